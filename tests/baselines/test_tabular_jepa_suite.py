"""The tabular_jepa suite end to end through the real CLI (its smoke version), real MLflow and worker processes."""

import pytest
from conftest import child_runs, cli

pytestmark = pytest.mark.slow


def test_tabular_jepa_smoke_suite(root, tmp_path):
    proc = cli(root, tmp_path, "run", str(root / "suites" / "tabular_jepa_smoke.yaml"), "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    runs, _ = child_runs(tmp_path, "tabular_jepa_smoke")
    assert len(runs) == 13  # [REG] in {0, 1}, diabetes x {jepa, raw}, 7 ablations, the supervised ceiling and its probe; one seed
    children = [r for r in runs if r.data.params["method.name"] != "finetune"]
    for r in children:
        assert r.info.status == "FINISHED" and r.data.tags["outcome"] == "finished"
        m = r.data.metrics
        assert {"probe/linear", "probe/linear_256", "probe/knn", "probe/mlp", "probe/mlp_256", "probe/hgb", "probe/hgb_256"} <= set(m)
        assert {"collapse/log2_rank_centered", "collapse/content_share"} <= set(m)
    jepa = [r for r in children if r.data.params["method.name"] == "jepa" and r.data.params["task.name"] == "latent_table"
            and r.data.tags["ablation"] == "none"]
    assert sorted(r.data.params["model.n_reg"] for r in jepa) == ["0", "1"]
    for r in jepa:  # per-step collapse monitors and the probe over training
        assert {"train/pred_std", "train/target_std", "train/target_rankme", "train/step"} <= set(r.data.metrics)
        assert 0.0 <= r.data.metrics["probe/mlp_256"] <= 1.0
    diabetes = [r for r in children if r.data.params.get("task.dataset") == "diabetes"]
    assert len(diabetes) == 2 and all(r.data.metrics["probe/linear"] <= 1.0 for r in diabetes)  # R^2

    out = tmp_path / "reports" / "tabular_jepa_smoke"
    report = (out / "report.md").read_text()
    assert "Runs with results: 13 of 13 expected." in report and "| plumbing |" in report and "PASS" in report
    assert "| floor: raw |" in report and "| floor: untrained |" in report and "| ceiling: supervised |" in report
    assert "_no results yet_" not in report
    assert "probe mlp_256" in report and "| independent_raw | 1 |" in report and "| diabetes | raw | 1 |" in report
    for png in ("probe_vs_step.png", "rankme_vs_step.png", "loss_vs_step.png", "target_std_vs_step.png"):
        assert (out / png).stat().st_size > 1000
