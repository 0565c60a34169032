"""suites/copying_smoke.yaml (= copying.yaml shrunk) end to end through the real CLI, MLflow and workers."""

import pytest
from conftest import child_runs, cli

from harness.track import Tracker

pytestmark = pytest.mark.slow


def test_copying_smoke_suite_end_to_end(root, tmp_path):
    proc = cli(root, tmp_path, "run", str(root / "suites" / "copying_smoke.yaml"), "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    runs, parents = child_runs(tmp_path, "copying_smoke")
    assert len(runs) == 6 and len(parents) == 1
    refs = {r.data.tags["ablation"]: r for r in runs if r.data.tags["ablation"] != "none"}
    assert sorted(refs) == ["in_distribution", "untrained"]
    assert refs["in_distribution"].data.params["task.context_len"] == "128" and refs["untrained"].data.params["training.steps"] == "1"
    children = [r for r in runs if r.data.tags["ablation"] == "none"]
    by_model = {(r.data.params["model.name"], r.data.params.get("model.pos_emb")): r for r in children}
    assert set(by_model) == {("transformer", "hard_alibi"), ("transformer", "none"), ("lstm", None), ("mamba", None)}
    t = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    for r in children:
        assert r.info.status == "FINISHED" and r.data.params["task.name"] == "copy"
        assert {"exact/len_10", "exact/len_20", "token_acc/len_20", "examples_seen"} <= set(r.data.metrics)
        seen = sorted(t.client.get_metric_history(r.info.run_id, "examples_seen"), key=lambda m: m.step)
        assert [m.step for m in seen] == [4, 8]
        assert 0 < seen[0].value < seen[1].value  # 4 rows per step, >= 1 packed example each
        assert seen[1].value >= 8 * 4
    assert all(r.data.metrics[f"items/exact/len_{n}"] == 8 for r in runs for n in (10, 20))  # exact match: a proportion of 8 rows
    # the same data stream for every model (same seed): identical examples seen
    assert len({r.data.metrics["examples_seen"] for r in children}) == 1
    out = tmp_path / "reports" / "copying_smoke"
    report = (out / "report.md").read_text()
    assert "| transformer | hard_alibi | 1 |" in report and "| lstm | – | 1 |" in report and "| mamba | – | 1 |" in report
    assert "letters 20" in report
    assert (out / "sample_efficiency.png").stat().st_size > 1000 and (out / "copy_vs_length.png").stat().st_size > 1000
