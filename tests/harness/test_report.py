"""Reports from the polars results frame: tables (statistic and 95% interval over seeds, bold only when the
best is separated, ties, pooled axes named, filters with the suite's own values), figures and heatmaps,
report.md / report.html / tables.tex, atomic writes, and `harness report --check` on a store."""

import re

import numpy as np
import pytest
from scipy import stats as sps

from harness.report import Section, write_report
from harness.report.frame import build, select
from harness.report.render import ReportData
from harness.report.tables import metric_table
from harness.spec.models import SuiteSpec, TableSpec


def row(pe: str, seed: int, op: str = "add", accs: dict | None = None, **config) -> dict:
    """One run's row as results_frame builds it (ids, cell, config columns, final metrics)."""
    cfg = {"model.pos_emb": pe, "task.op": op, **{k.replace("__", "."): v for k, v in config.items()}}
    cell = " ".join(f"{k}={v}" for k, v in cfg.items())
    return {"run_id": f"{cell} {seed}", "mlflow_id": f"m {cell} {seed}", "cell": cell, "seed": seed, **cfg,
            **{f"exact/len_{n:02d}": v for n, v in (accs or {}).items()}}


def t_cell(values, d=2) -> str:
    m = np.mean(values)
    ci = sps.ttest_1samp(values, 0).confidence_interval(0.95)
    return f"{m:.{d}f} [{ci.low:.{d}f}, {ci.high:.{d}f}]"


def test_table_cells_are_mean_and_t_interval_and_two_seeds_bold_nothing():
    df = build([row("abs", 0, accs={5: 1.0, 10: 0.0}), row("abs", 1, accs={5: 0.8, 10: 0.2}),
                row("rel_k", 0, accs={5: 1.0, 10: 0.9}), row("rel_k", 1, accs={5: 1.0, 10: 0.7}),
                row("rel_k", 0, "mul", {5: 0.5, 10: 0.5})])
    t = metric_table(df, TableSpec(title="t", metric="exact/len_", rows=["model.pos_emb"], where={"task.op": "add"}))
    assert t.header == ["model.pos_emb", "seeds", "length 5", "length 10"]
    assert t.cells[0] == ["abs", "2", t_cell([1.0, 0.8]), t_cell([0.0, 0.2])]  # nothing is clipped: no test items declared
    assert t.cells[1][:3] == ["rel_k", "2", "1.00"]  # two identical seeds: no interval (was [1.00, 1.00], taken as certain)
    assert not any(any(b) for b in t.bold) and "Nothing is bold: a cell with fewer than 3 runs" in t.note
    assert "t-interval over seeds" in t.note and "no interval (the seeds agree exactly" in t.note


def test_a_proportion_cell_adds_its_test_items_and_is_bold_only_when_separated():
    good = [0.90, 0.91, 0.93, 0.92, 0.90]
    bad = [0.50, 0.55, 0.52, 0.49, 0.51]
    df = build([{**row("rel_k", s, accs={5: v}), "items/exact/len_05": 200} for s, v in enumerate(good)]
               + [{**row("abs", s, accs={5: v}), "items/exact/len_05": 200} for s, v in enumerate(bad)])
    t = metric_table(df, TableSpec(title="t", metric="exact/len_", rows=["model.pos_emb"]))
    assert [r[0] for r in t.cells] == ["abs", "rel_k"] and t.bold[1][2] and not t.bold[0][2]
    from harness.report import stats

    e = stats.interval(good, items=200)
    assert t.cells[1][2] == f"0.91 [{e.lo:.2f}, {e.hi:.2f}]" and t.rows[1][2].startswith("**0.91")
    assert e.lo < stats.interval(good).lo  # wider than the seeds alone
    assert "Wilson interval of the test items" in t.note and "paired t-interval + test items" in t.note
    iqm = metric_table(df, TableSpec(title="t", metric="exact/len_", rows=["model.pos_emb"], statistic="iqm", std=True))
    assert iqm.cells[1][2] == f"{sps.trim_mean(good, 0.25):.2f} ± {np.std(good, ddof=1):.2f}" and "IQM" in iqm.note  # 5 runs: none


def test_single_run_cells_have_no_interval_and_no_marks_and_columns_sort_numerically():
    t = metric_table(build([row("abs", 0, accs={10: 0.5, 5: 1.0, 20: 0.0}), row("rope", 0, accs={5: 0.5, 10: 0.2, 20: 0.1})]),
                     TableSpec(title="t", metric="exact/len_", rows=["model.pos_emb"]))
    assert t.header[2:] == ["length 5", "length 10", "length 20"]
    assert t.cells[0][2:] == ["1.00", "0.50", "0.00"] and not any(any(b) for b in t.bold)
    assert "Nothing is bold" in t.note and "no interval (one run)" in t.note


def test_a_pooled_axis_is_named_with_the_run_count():
    rows = [row(pe, s, accs={5: 0.1 * s + (0.5 if lr == 1e-3 else 0)}, optimizer__lr=lr) for pe in ("abs", "rope") for lr in (1e-3, 1e-2) for s in (0, 1)]
    df = build(rows)
    t = metric_table(df, TableSpec(title="t", metric="exact/len_", rows=["model.pos_emb"]), axes=["model.pos_emb", "optimizer.lr"])
    assert t.cells[0][1] == "4 runs / 2 seeds" and t.pooled == {"optimizer.lr": 2}
    assert "POOLED (not a row, column or `where`): optimizer.lr (2 values); up to 4 runs per cell" in t.note
    listed = metric_table(df, TableSpec(title="t", metric="exact/len_", rows=["model.pos_emb", "optimizer.lr"]), axes=["model.pos_emb", "optimizer.lr"])
    assert listed.pooled == {} and listed.cells[0][2] == "2" and "POOLED" not in listed.note
    declared = metric_table(df, TableSpec(title="t", metric="exact/len_", rows=["model.pos_emb"], pool=["optimizer.lr"]), axes=["optimizer.lr"])
    assert "Averaged on purpose (`pool`): optimizer.lr (2 values)" in declared.note and "POOLED" not in declared.note


def test_where_takes_the_suites_own_values_a_list_axis_as_a_list():
    df = build([row("abs", 0, accs={5: 0.1}, task__train_len=[5, 10]), row("abs", 1, accs={5: 0.2}, task__train_len=[5, 20]),
                row("rope", 0, accs={5: 0.3}, task__train_len=[5, 20])])
    assert str(df.schema["task.train_len"]).startswith("List")
    assert select(df, {"task.train_len": [5, 20]})["seed"].to_list() == [1, 0]
    assert select(df, {"task.train_len": [[5, 10], [5, 20]]}).height == 3
    assert select(df, {"task.train_len": "[5, 20]"}).height == 0  # MLflow's string of the list is not the value
    assert select(df, {"model.pos_emb": ["abs", "rope"], "seed": 0})["run_id"].to_list() == [df["run_id"][0], df["run_id"][2]]
    assert select(df, {"no.such": 1}).height == 0


def test_empty_selection_gives_empty_table():
    df = build([row("abs", 0, accs={5: 1.0})])
    assert metric_table(df, TableSpec(title="t", metric="exact/len_", rows=["model.pos_emb"], where={"task.op": "mul"})).rows == []


def test_figure_over_a_logged_metric_uses_histories_and_averages_x_per_step(tmp_path):
    from harness.report.figures import curve_data, metric_curve
    from harness.report.frame import history_frame
    from harness.spec.models import FigureSpec

    df = build([row("abs", 0, accs={5: 1.0}), row("abs", 1, accs={5: 1.0}), row("rope", 0, accs={5: 0.0})])
    ids = df["run_id"].to_list()
    hist = history_frame({  # per run_id: (metric, step, value)
        ids[0]: [("exact/len_05", 10, 0.2), ("exact/len_05", 20, 0.9), ("examples_seen", 10, 100.0), ("examples_seen", 20, 200.0)],
        ids[1]: [("exact/len_05", 10, 0.4), ("exact/len_05", 20, 1.0), ("examples_seen", 10, 110.0), ("examples_seen", 20, 210.0)],
        ids[2]: [("exact/len_05", 10, 0.0), ("examples_seen", 10, 90.0)],
    })
    assert hist.columns == ["run_id", "metric", "step", "value"] and hist.height == 10
    spec = FigureSpec(title="f", metric="exact/len_05", over="examples_seen", hue=["model.pos_emb"], file="f.png")
    long = curve_data(df, spec, hist).sort(["model.pos_emb", "x", "seed"])
    assert long.select(["model.pos_emb", "seed", "x", "value"]).rows() == [
        ("abs", 0, 105.0, 0.2), ("abs", 1, 105.0, 0.4), ("abs", 0, 205.0, 0.9), ("abs", 1, 205.0, 1.0), ("rope", 0, 90.0, 0.0)]
    assert metric_curve(df, spec, tmp_path / "f.png", hist).stat().st_size > 0


def test_figure_bands_stay_in_a_proportions_range_and_nothing_else_is_clipped():
    from harness.report.figures import band_data, curve_data
    from harness.spec.models import FigureSpec

    rows = [row("abs", 0, accs={5: 0.0}), row("abs", 1, accs={5: 0.9})]  # t-interval of 2 seeds: far outside [0, 1]
    spec = FigureSpec(title="f", metric="exact/len_", hue=["model.pos_emb"], file="f.png")
    (b,) = band_data(curve_data(build(rows), spec), spec)
    assert b["lo"] < 0 and b["hi"] > 1 and b["mean"] == pytest.approx(0.45)  # not a declared proportion: not clipped
    (p,) = band_data(curve_data(build([{**r, "items/exact": 100} for r in rows]), spec), spec)
    assert 0 <= p["lo"] < 0.45 < p["hi"] <= 1  # a proportion's interval lies in [0, 1]
    (c,) = band_data(curve_data(build(rows), spec), spec.model_copy(update={"range": (0.0, 0.8)}))
    assert c["hi"] == 0.8


def test_figure_over_a_config_axis_and_spec_rejects_two_x_axes():
    from pydantic import ValidationError

    from harness.report.figures import curve_data
    from harness.spec.models import FigureSpec

    df = build([row("abs", 0, "add", {5: 0.5}), row("abs", 1, "mul", {5: 0.25})])
    spec = FigureSpec(title="f", metric="exact/len_05", x="task.op", hue=["model.pos_emb"], file="f.png")
    assert curve_data(df, spec).select(["x", "value"]).rows() == [("add", 0.5), ("mul", 0.25)]
    with pytest.raises(ValidationError, match="at most one of 'x'"):
        FigureSpec(title="f", metric="m", x="task.op", over="examples_seen", hue=["seed"], file="f.png")


def test_rows_keep_runs_without_a_row_key():
    lstm = {"run_id": "lstm0", "cell": "lstm", "seed": 0, "model.name": "lstm", "exact/len_05": 0.25}
    df = build([row("abs", 0, accs={5: 1.0}), lstm])
    t = metric_table(df, TableSpec(title="t", metric="exact/len_", rows=["model.pos_emb"]))
    assert [r[:3] for r in t.cells] == [["abs", "1", "1.00"], ["–", "1", "0.25"]]


def test_integer_valued_float_keys_print_as_ints_and_decimals_are_configurable():
    a = {"run_id": "r1", "cell": "a", "seed": 0, "k": 4, "m/x": 0.00123}
    b = {"run_id": "r2", "cell": "b", "seed": 0, "k": 2.5, "m/x": 0.5}  # ints and floats: the column is float
    t = metric_table(build([a, b]), TableSpec(title="t", metric="m/", rows=["k"], decimals=4, column_label=""))
    assert [r[0] for r in t.cells] == ["2.5", "4"] and t.cells[1][2] == "0.0012"


# ---------------------------------------------------------------- report files: md, html, tex, figures

def small_suite(**report) -> SuiteSpec:
    return SuiteSpec.model_validate({
        "name": "small", "description": "a & b_c", "defaults": {},
        "report": {"tables": [{"title": "Exact % by length", "metric": "exact/len_", "rows": ["model.pos_emb"]}],
                   "figures": [{"title": "F", "metric": "exact/len_", "hue": ["model.pos_emb"], "file": "f.png"}],
                   "heatmaps": [{"title": "H", "metric": "exact/len_", "rows": "model.pos_emb", "file": "h.png"}], **report},
        "claims": [{"id": "rel_wins", "text": "rel_k beats abs at 10", "source": "T1", "paper_value": 15,
                    "check": {"kind": "beats", "metric": "exact/len_10", "a": {"where": {"model.pos_emb": "rel_k"}},
                              "b": {"where": {"model.pos_emb": "abs"}}}},
                   {"id": "loose", "text": "no check here"}],
    })


def frame():
    return build([row("abs", 0, accs={5: 1.0, 10: 0.0}), row("abs", 1, accs={5: 0.8, 10: 0.2}),
                  row("rel_k", 0, accs={5: 1.0, 10: 0.9}), row("rel_k", 1, accs={5: 1.0, 10: 0.7})])


def data(df, n_expected, urls=None):
    return ReportData(df, None, n_expected, ["model.pos_emb"], urls or {})


def tabulars(tex: str) -> list[tuple[int, list[str]]]:
    """(number of columns, body rows) of every tabular; fails on unbalanced structure."""
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}")
    out = []
    for m in re.finditer(r"\\begin\{tabular\}\{((?:[^{}]|\{[^{}]*\})*)\}\n(.*?)\\end\{tabular\}", tex, re.S):
        n_cols = len(re.findall(r"p\{[^}]*\}|[lcr]", m.group(1)))
        body = m.group(2).split("\n")
        assert body[0] == r"\toprule" and body[2] == r"\midrule" and body[-2] == r"\bottomrule", body
        rows = [body[1], *body[3:-2]]
        for row in rows:
            assert row.endswith(r" \\") and len(re.findall(r"(?<!\\)&", row)) == n_cols - 1, row
            assert row.count("{") - row.count(r"\{") == row.count("}") - row.count(r"\}"), row
            assert not re.search(r"(?<!\\)[_%#$]", re.sub(r"\$(\\[a-zA-Z]+|-)\$", "", row)), row  # specials escaped
        out.append((n_cols, rows))
    return out


def test_write_report_md_html_tex_figures_claims_and_extra_sections(tmp_path):
    extra = Section("Tuning: best params per cell", ["cell", "lr"], [["abs", "0.003"], ["rel_k", "1e-3"]], note="3 trials each")
    md_path = write_report(small_suite(), data(frame(), 5, {r: f"http://ui/#/r/{i}" for i, r in enumerate(frame()["run_id"])}), tmp_path / "small", sections=[extra])
    out = md_path.parent
    assert {p.name for p in out.iterdir()} == {"report.md", "report.html", "tables.tex", "f.png", "h.png"}
    md = md_path.read_text()
    assert "Runs with results: 4 of 5 expected." in md
    assert ("| rel_wins | rel_k beats abs at 10 | T1 | 15 | exact/len_10: a > b [a: pos_emb=rel_k; b: pos_emb=abs] | 0.80 vs 0.10: "
            "a-b +0.70 [-1.84, +3.24] (2 seeds) | – | paired by seed: 95% interval of the mean difference; one-sided "
            "t-test of difference > margin 0; 2 seeds: a decision needs 3 or more | INCONCLUSIVE |") in md
    assert "| loose | no check here |  |  | – | – | – | – | not checked |" in md
    assert f"| abs | 2 | {t_cell([1.0, 0.8])} | {t_cell([0.0, 0.2])} |" in md and f"| rel_k | 2 | 1.00 | {t_cell([0.9, 0.7])} |" in md
    assert "## Runs" in md and "| [model.pos_emb=abs task.op=add](http://ui/#/r/0) | 0 |" in md
    assert "## Tuning: best params per cell" in md and "| rel_k | 1e-3 |" in md and "3 trials each" in md
    assert "![F](f.png)" in md and "![H](h.png)" in md
    html = (out / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 2 and not re.search(r"src=\"(?!data:)", html)
    assert re.findall(r'href="([^"]*)"', html) == [f"http://ui/#/r/{i}" for i in range(4)]  # only the runs' MLflow pages
    assert "<link" not in html and "<script" not in html and "<style>" in html
    assert '<td class="INCONCLUSIVE">INCONCLUSIVE</td>' in html and "<td>1.00</td>" in html
    assert "Tuning: best params per cell" in html
    tex = (out / "tables.tex").read_text()
    tables = tabulars(tex)
    assert [n for n, _ in tables] == [9, 4, 2]  # claims, the metric table, the extra section (not the runs index)
    assert tables[1][1][0] == r"model.pos\_emb & seeds & length 5 & length 10 \\"
    assert tables[1][1][2] == rf"rel\_k & 2 & 1.00 & {t_cell([0.9, 0.7])} \\"
    assert r"\caption{Exact \% by length}" in tex


def test_a_failing_render_leaves_the_previous_report_untouched(tmp_path, monkeypatch):
    import harness.report.render as render

    out = tmp_path / "small"
    write_report(small_suite(), data(frame(), 4), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(doc):
        raise RuntimeError("disk full")

    monkeypatch.setattr(render, "render_tex", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_report(small_suite(), data(frame().head(2), 4), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["small"]  # no temporary folder left behind


def test_heatmap_and_table_columns_from_a_config_path():
    from harness.report.figures import heatmap_data
    from harness.spec.models import HeatmapSpec

    df = frame()
    grid = heatmap_data(df, HeatmapSpec(title="h", metric="exact/len_", rows="model.pos_emb", file="h.png"))
    assert grid.round(6).values.tolist() == [[0.9, 0.1], [1.0, 0.8]] and list(grid.columns) == ["5", "10"]
    by_seed = heatmap_data(df, HeatmapSpec(title="h", metric="exact/len_10", rows="model.pos_emb", columns="seed", file="h.png"))
    assert by_seed.values.tolist() == [[0.0, 0.2], [0.9, 0.7]]
    t = metric_table(df, TableSpec(title="t", metric="exact/len_10", rows=["model.pos_emb"], columns="seed", column_label="seed"))
    assert t.header == ["model.pos_emb", "seeds", "seed 0", "seed 1"] and t.rows[1] == ["rel_k", "2", "0.90", "0.70"]


def test_report_spec_rejects_two_figures_writing_one_file():
    with pytest.raises(ValueError, match="two figures write the same file: f.png"):
        small_suite(heatmaps=[{"title": "H", "metric": "m", "rows": "r", "file": "f.png"}])


# ---------------------------------------------------------------- `harness report` on a store: --check, MLflow artifacts
FAKE = """name: fake
defaults:
  task: {{name: arithmetic, op: add, train_digits: [1, 3], test_digits: [3, 4], max_digits: 4}}
  model: {{name: transformer, d_model: 16, n_layers: 1, n_heads: 2}}
  method: {{name: supervised}}
grid:
  model.pos_emb: [abs, rel_k]
seeds: [0, 1, 2]
report:
  tables: [{{title: T, metric: exact/len_, rows: [model.pos_emb]}}]
{refs}claims:
  - id: rel_beats_abs
    text: rel_k beats abs on 4 digits
    check: {{kind: beats, metric: {m}, a: {{where: {{model.pos_emb: {a}}}}}, b: {{where: {{model.pos_emb: {b}}}}}}}
  - {{id: loose, text: not checked}}
"""
NO_ROOM = """references:  # a floor and a ceiling that are the same runs: no headroom at all
  low: {role: floor, where: {model.pos_emb: abs}}
  high: {role: ceiling, where: {model.pos_emb: abs}}
"""


def test_report_command_checks_claims_and_logs_the_report_to_mlflow(tmp_path, capsys):
    from harness.cli import main
    from harness.spec import expand, load_suite
    from harness.tags import Tag
    from harness.track import Tracker

    good, bad, noisy, flat = (tmp_path / f"{n}.yaml" for n in ("fake", "fake_bad", "fake_noisy", "fake_flat"))
    good.write_text(FAKE.format(a="rel_k", b="abs", m="exact/len_04", refs=""))
    bad.write_text(FAKE.format(a="abs", b="rel_k", m="exact/len_04", refs=""))
    noisy.write_text(FAKE.format(a="rel_k", b="abs", m="exact/len_03", refs=""))
    flat.write_text(FAKE.format(a="rel_k", b="abs", m="exact/len_04", refs=NO_ROOM))
    uri = f"sqlite:///{tmp_path}/m.db"
    t = Tracker(uri)
    t.setup()
    exp = t.experiment("fake")
    for r in expand(load_suite(good)):  # finished child runs without a parent (as if the parent were lost)
        mid = t.client.create_run(exp, tags={"run_id": r.run_id, "device": "cpu", "git_sha": "abc123"}).info.run_id
        for k, v in r.config.flat().items():
            t.client.log_param(mid, k, str(v))
        rel, s = r.config.model.pos_emb == "rel_k", r.config.seed
        t.client.log_metric(mid, "exact/len_03", 0.5 + 0.2 * s if rel else 0.4 + 0.05 * s)  # the seeds disagree
        t.client.log_metric(mid, "exact/len_04", (0.8 + 0.02 * s) if rel else 0.1 + 0.01 * s * s)
        t.terminate(mid, "FINISHED")
    args = ["--tracking-uri", uri, "--reports-dir", str(tmp_path / "reports"), "--check"]

    assert main(["report", str(good), *args]) == 0
    err = capsys.readouterr().err
    assert "claim PASS         rel_beats_abs: 0.82 vs 0.12: a-b +0.70 [+0.69, +0.72], p = 1.1e-05 (3 seeds)" in err
    assert "claim not checked  loose" in err
    md = (tmp_path / "reports" / "fake" / "report.md").read_text()
    assert f"| abs | 3 | {t_cell([0.4, 0.45, 0.5])} ≈ | {t_cell([0.1, 0.11, 0.14])} |" in md and "abc123 (6 runs)" in md
    parents = [r for r in t.client.search_runs([exp]) if "run_id" not in r.data.tags]
    assert len(parents) == 1 and parents[0].data.tags[Tag.KIND] == "report"  # created: the store had no parent run
    assert parents[0].data.tags["claim.rel_beats_abs"] == "PASS" and "report/report.html" in parents[0].data.tags[Tag.NOTE]
    logged = {a.path for a in t.client.list_artifacts(parents[0].info.run_id, "report")}
    assert {"report/report.md", "report/report.html", "report/tables.tex"} <= logged

    assert main(["report", str(noisy), *args]) == 3  # INCONCLUSIVE: its own exit status
    err = capsys.readouterr().err
    assert "claims inconclusive: rel_beats_abs" in err

    assert main(["report", str(flat), *args]) == 4  # UNTESTABLE: another
    err = capsys.readouterr().err
    assert "claims untestable: rel_beats_abs" in err and "headroom +0.00" in err

    assert main(["report", str(bad), *args]) == 1
    assert "claims failed: rel_beats_abs (FAIL)" in capsys.readouterr().err
    assert main(["report", str(bad), *args[:-1]]) == 0  # without --check a failing claim is only reported
    assert len([r for r in t.client.search_runs([exp]) if "run_id" not in r.data.tags]) == 1  # the report run is reused
