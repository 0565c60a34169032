"""Report tables from a results DataFrame: mean ± std over seeds, best in bold, filters."""

import pandas as pd

from harness.report.frame import parse_param, results_frame
from harness.report.tables import metric_table
from harness.spec.models import TableSpec
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


def test_figure_over_a_config_axis_and_spec_rejects_two_x_axes():
    import pytest
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
