"""Reports from a results DataFrame: tables (mean ± std over seeds, best in bold, filters), figures and
heatmaps, report.md / report.html / tables.tex, atomic writes, and `harness report --check` on a store."""

import re

import pandas as pd
import pytest

from harness.report import Section, write_report
from harness.report.frame import parse_param, results_frame
from harness.report.tables import metric_table
from harness.spec.models import SuiteSpec, TableSpec
from harness.track import RunRecord


def rec(pe: str, seed: int, op: str, accs: dict[int, float]) -> RunRecord:
    params = {"model.pos_emb": pe, "seed": str(seed), "task.op": op}
    return RunRecord(f"m{pe}{seed}", f"{pe}{seed}{op}", "FINISHED", params, {"ablation": ""}, {f"exact/len_{n:02d}": v for n, v in accs.items()})


def test_table_mean_std_bold_and_filter():
    df = results_frame([
        rec("abs", 0, "add", {5: 1.0, 10: 0.0}), rec("abs", 1, "add", {5: 0.8, 10: 0.2}),
        rec("rel_k", 0, "add", {5: 1.0, 10: 0.9}), rec("rel_k", 1, "add", {5: 1.0, 10: 0.7}),
        rec("rel_k", 0, "mul", {5: 0.5, 10: 0.5}),
    ])
    t = metric_table(df, TableSpec(title="t", metric="exact/len_", rows=["model.pos_emb"], where={"task.op": "add"}))
    assert t.header == ["model.pos_emb", "seeds", "length 5", "length 10"]
    assert t.rows[0] == ["abs", "2", "0.90 ± 0.14", "0.10 ± 0.14"]
    assert t.rows[1] == ["rel_k", "2", "**1.00 ± 0.00**", "**0.80 ± 0.14**"]
    md = t.markdown().splitlines()
    assert md[0].startswith("| model.pos_emb | seeds |") and len(md) == 4


def test_single_seed_has_no_std_and_columns_sort_numerically():
    df = results_frame([rec("abs", 0, "add", {10: 0.5, 5: 1.0, 20: 0.0})])
    t = metric_table(df, TableSpec(title="t", metric="exact/len_", rows=["model.pos_emb"]))
    assert t.header[2:] == ["length 5", "length 10", "length 20"]
    assert t.rows[0][2:] == ["**1.00**", "**0.50**", "**0.00**"]


def test_parse_param():
    assert [parse_param(x) for x in ["3", "0.5", "True", "None", "rel_k", "[1, 5]"]] == [3, 0.5, True, None, "rel_k", "[1, 5]"]


def test_empty_selection_gives_empty_table():
    df = pd.DataFrame([{"model.pos_emb": "abs", "seed": 0, "task.op": "add", "exact/len_05": 1.0}])
    assert metric_table(df, TableSpec(title="t", metric="exact/len_", rows=["model.pos_emb"], where={"task.op": "mul"})).rows == []


def test_figure_over_a_logged_metric_uses_histories_and_averages_x_per_step(tmp_path):
    from harness.report.figures import curve_data, metric_curve
    from harness.report.frame import history_frame
    from harness.spec.models import FigureSpec

    recs = [rec("abs", 0, "add", {5: 1.0}), rec("abs", 1, "add", {5: 1.0}), rec("rope", 0, "add", {5: 0.0})]
    hist = {  # per mlflow id: metric -> [(step, value)]
        "mabs0": {"exact/len_05": [(10, 0.2), (20, 0.9)], "examples_seen": [(10, 100.0), (20, 200.0)]},
        "mabs1": {"exact/len_05": [(10, 0.4), (20, 1.0)], "examples_seen": [(10, 110.0), (20, 210.0)]},
        "mrope0": {"exact/len_05": [(10, 0.0)], "examples_seen": [(10, 90.0)]},
    }
    frame = history_frame(recs, hist)
    assert len(frame) == 5 and {"step", "exact/len_05", "examples_seen", "model.pos_emb"} <= set(frame.columns)
    spec = FigureSpec(title="f", metric="exact/len_05", over="examples_seen", hue=["model.pos_emb"], file="f.png")
    long = curve_data(results_frame(recs), spec, frame).sort_values(["model.pos_emb", "x", "seed"])
    assert long[["model.pos_emb", "seed", "x", "value"]].values.tolist() == [
        ["abs", 0, 105.0, 0.2], ["abs", 1, 105.0, 0.4], ["abs", 0, 205.0, 0.9], ["abs", 1, 205.0, 1.0], ["rope", 0, 90.0, 0.0]]
    assert metric_curve(results_frame(recs), spec, tmp_path / "f.png", frame).stat().st_size > 0


def test_figure_over_a_logged_metric_selects_ablations_like_a_table():
    from harness.report.figures import curve_data
    from harness.report.frame import history_frame
    from harness.spec.models import FigureSpec

    base, arm = rec("abs", 0, "add", {5: 1.0}), rec("abs", 0, "add", {5: 0.5})
    arm = RunRecord("marm", "arm", "FINISHED", arm.params, {"ablation": "no_clip"}, arm.metrics)
    hist = {"mabs0": {"exact/len_05": [(10, 0.2)], "step_metric": [(10, 10.0)]},
            "marm": {"exact/len_05": [(10, 0.7)], "step_metric": [(10, 10.0)]}}
    frame = history_frame([base, arm], hist)
    assert frame["ablation"].tolist() == ["", "no_clip"]
    spec = FigureSpec(title="f", metric="exact/len_05", over="step_metric", hue=["ablation"], where={"ablation": "no_clip"}, file="f.png")
    assert curve_data(results_frame([base, arm]), spec, frame)[["ablation", "x", "value"]].values.tolist() == [["no_clip", 10.0, 0.7]]


def test_figure_over_a_config_axis_and_spec_rejects_two_x_axes():
    from pydantic import ValidationError

    from harness.report.figures import curve_data
    from harness.spec.models import FigureSpec

    df = results_frame([rec("abs", 0, "add", {5: 0.5}), rec("abs", 1, "mul", {5: 0.25})])
    spec = FigureSpec(title="f", metric="exact/len_05", x="task.op", hue=["model.pos_emb"], file="f.png")
    assert curve_data(df, spec)[["x", "value"]].values.tolist() == [["add", 0.5], ["mul", 0.25]]
    with pytest.raises(ValidationError, match="at most one of 'x'"):
        FigureSpec(title="f", metric="m", x="task.op", over="examples_seen", hue=["seed"], file="f.png")


def test_rows_keep_runs_without_a_row_key():
    r_lstm = RunRecord("ml", "lstm0", "FINISHED", {"model.name": "lstm", "seed": "0"}, {}, {"exact/len_05": 0.25})
    df = results_frame([rec("abs", 0, "add", {5: 1.0}), r_lstm])
    t = metric_table(df, TableSpec(title="t", metric="exact/len_", rows=["model.pos_emb"]))
    assert [r[:3] for r in t.rows] == [["abs", "1", "**1.00**"], ["–", "1", "0.25"]]


def test_no_bold_when_every_row_ties():
    df = results_frame([rec("abs", 0, "add", {5: 0.0, 10: 0.5}), rec("rope", 0, "add", {5: 0.0, 10: 0.25})])
    t = metric_table(df, TableSpec(title="t", metric="exact/len_", rows=["model.pos_emb"]))
    assert [r[2:] for r in t.rows] == [["0.00", "**0.50**"], ["0.00", "0.25"]]


def test_integer_valued_float_keys_print_as_ints_and_decimals_are_configurable():
    a = RunRecord("m1", "r1", "FINISHED", {"k": "4", "seed": "0"}, {}, {"m/x": 0.00123})
    b = RunRecord("m2", "r2", "FINISHED", {"seed": "0"}, {}, {"m/x": 0.5})  # no `k`: the column becomes float
    t = metric_table(results_frame([a, b]), TableSpec(title="t", metric="m/", rows=["k"], decimals=4, column_label=""))
    assert [r[0] for r in t.rows] == ["4", "–"] and t.rows[0][2] == "0.0012"


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
    return results_frame([rec("abs", 0, "add", {5: 1.0, 10: 0.0}), rec("abs", 1, "add", {5: 0.8, 10: 0.2}),
                          rec("rel_k", 0, "add", {5: 1.0, 10: 0.9}), rec("rel_k", 1, "add", {5: 1.0, 10: 0.7})])


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
    md_path = write_report(small_suite(), frame(), tmp_path / "small", 5, sections=[extra])
    out = md_path.parent
    assert {p.name for p in out.iterdir()} == {"report.md", "report.html", "tables.tex", "f.png", "h.png"}
    md = md_path.read_text()
    assert "Runs with results: 4 of 5 expected." in md
    assert "| rel_wins | rel_k beats abs at 10 | T1 | 15 | exact/len_10: a > b [a: pos_emb=rel_k; b: pos_emb=abs] | 0.80 vs 0.10 | PASS |" in md
    assert "| loose | no check here |  |  | – | – | not checked |" in md
    assert "| abs | 2 | 0.90 ± 0.14 | 0.10 ± 0.14 |" in md and "| rel_k | 2 | **1.00 ± 0.00** | **0.80 ± 0.14** |" in md
    assert "## Tuning: best params per cell" in md and "| rel_k | 1e-3 |" in md and "3 trials each" in md
    assert "![F](f.png)" in md and "![H](h.png)" in md
    html = (out / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 2 and not re.search(r"(src|href)=\"(?!data:)", html)
    assert "<link" not in html and "<script" not in html and "<style>" in html
    assert '<td class="PASS">PASS</td>' in html and "<b>1.00 ± 0.00</b>" in html and "Tuning: best params per cell" in html
    tex = (out / "tables.tex").read_text()
    tables = tabulars(tex)
    assert [n for n, _ in tables] == [7, 4, 2]  # claims, the metric table, the extra section
    assert tables[1][1][0] == r"model.pos\_emb & seeds & length 5 & length 10 \\"
    assert tables[1][1][2] == r"rel\_k & 2 & \textbf{1.00 $\pm$ 0.00} & \textbf{0.80 $\pm$ 0.14} \\"
    assert r"\caption{Exact \% by length}" in tex


def test_a_failing_render_leaves_the_previous_report_untouched(tmp_path, monkeypatch):
    import harness.report.render as render

    out = tmp_path / "small"
    write_report(small_suite(), frame(), out, 4)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(doc):
        raise RuntimeError("disk full")

    monkeypatch.setattr(render, "render_tex", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_report(small_suite(), frame().iloc[:2], out, 4)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["small"]  # no temporary folder left behind


def test_heatmap_and_table_columns_from_a_config_path():
    from harness.report.figures import heatmap_data
    from harness.spec.models import HeatmapSpec

    df = frame()
    grid = heatmap_data(df, HeatmapSpec(title="h", metric="exact/len_", rows="model.pos_emb", file="h.png"))
    assert grid.round(6).values.tolist() == [[0.9, 0.1], [1.0, 0.8]] and list(grid.columns) == [5, 10]
    by_seed = heatmap_data(df, HeatmapSpec(title="h", metric="exact/len_10", rows="model.pos_emb", columns="seed", file="h.png"))
    assert by_seed.values.tolist() == [[0.0, 0.2], [0.9, 0.7]]
    t = metric_table(df, TableSpec(title="t", metric="exact/len_10", rows=["model.pos_emb"], columns="seed", column_label="seed"))
    assert t.header == ["model.pos_emb", "seeds", "seed 0", "seed 1"] and t.rows[1] == ["rel_k", "2", "**0.90**", "**0.70**"]


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
seeds: [0, 1]
report:
  tables: [{{title: T, metric: exact/len_, rows: [model.pos_emb]}}]
claims:
  - id: rel_beats_abs
    text: rel_k beats abs on 4 digits
    check: {{kind: beats, metric: exact/len_04, a: {{where: {{model.pos_emb: {a}}}}}, b: {{where: {{model.pos_emb: {b}}}}}}}
  - {{id: loose, text: not checked}}
"""


def test_report_command_checks_claims_and_logs_the_report_to_mlflow(tmp_path, capsys):
    from harness.cli import main
    from harness.spec import expand, load_suite
    from harness.tags import Tag
    from harness.track import Tracker

    good, bad = tmp_path / "fake.yaml", tmp_path / "fake_bad.yaml"
    good.write_text(FAKE.format(a="rel_k", b="abs"))
    bad.write_text(FAKE.format(a="abs", b="rel_k"))
    uri = f"sqlite:///{tmp_path}/m.db"
    t = Tracker(uri)
    t.setup()
    exp = t.experiment("fake")
    for r in expand(load_suite(good)):  # finished child runs without a parent (as if the parent were lost)
        mid = t.client.create_run(exp, tags={"run_id": r.run_id, "device": "cpu", "git_sha": "abc123"}).info.run_id
        for k, v in r.config.flat().items():
            t.client.log_param(mid, k, str(v))
        rel = r.config.model.pos_emb == "rel_k"
        t.client.log_metric(mid, "exact/len_03", 1.0)
        t.client.log_metric(mid, "exact/len_04", (0.8 if rel else 0.1) + 0.01 * r.config.seed)
        t.terminate(mid, "FINISHED")
    args = ["--tracking-uri", uri, "--reports-dir", str(tmp_path / "reports"), "--check"]

    assert main(["report", str(good), *args]) == 0
    err = capsys.readouterr().err
    assert "claim PASS        rel_beats_abs: 0.81 vs 0.11" in err and "claim not checked loose" in err
    md = (tmp_path / "reports" / "fake" / "report.md").read_text()
    assert "| abs | 2 | 1.00 ± 0.00 | 0.11 ± 0.01 |" in md and "abc123 (4 runs)" in md and "cpu (4 runs)" in md
    parents = [r for r in t.client.search_runs([exp]) if "run_id" not in r.data.tags]
    assert len(parents) == 1 and parents[0].data.tags[Tag.KIND] == "report"  # created: the store had no parent run
    logged = {a.path for a in t.client.list_artifacts(parents[0].info.run_id, "report")}
    assert {"report/report.md", "report/report.html", "report/tables.tex"} <= logged

    assert main(["report", str(bad), *args]) == 1
    assert "claims failed: rel_beats_abs (FAIL)" in capsys.readouterr().err
    assert main(["report", str(bad), *args[:-1]]) == 0  # without --check a failing claim is only reported
    assert len([r for r in t.client.search_runs([exp]) if "run_id" not in r.data.tags]) == 1  # the report run is reused
