"""The policy_jepa suite end to end through the real CLI (its smoke version), real MLflow and worker processes."""

import pytest
from conftest import child_runs, cli

pytestmark = pytest.mark.slow


def test_policy_jepa_smoke_suite(root, tmp_path):
    proc = cli(root, tmp_path, "run", str(root / "suites" / "policy_jepa_smoke.yaml"), "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    runs, _ = child_runs(tmp_path, "policy_jepa_smoke")
    refs = {r.data.tags["ablation"]: r.data.metrics for r in runs if r.data.tags["ablation"] != "none"}
    assert sorted(refs) == ["expert", "still", "untrained"]
    assert refs["expert"]["success"] == 1.0 and refs["still"]["success"] < 1.0  # the expert, through the same evaluator
    assert refs["expert"]["items/success"] == 8  # success: a proportion of the 8 rollout starts
    children = [r for r in runs if r.data.tags["ablation"] == "none"]
    assert sorted(r.data.params["method.aux.name"] for r in children) == ["latent", "none", "raw"]
    for r in children:
        assert r.info.status == "FINISHED" and r.data.tags["outcome"] == "finished"
        m = r.data.metrics
        assert {"success", "final_dist", "action_l1", "probe/future_r2", "probe/future_r2_disk", "probe/state_future_r2"} <= set(m)
        assert 0.0 <= m["success"] <= 1.0 and m["action_l1"] > 0 and m["probe/future_r2"] <= 1.0
        assert {"train/action_loss", "train/step"} <= set(m)
    by_aux = {r.data.params["method.aux.name"]: r.data.metrics for r in children}
    assert {"train/aux_loss", "train/target_std", "train/ema_momentum"} <= set(by_aux["latent"])  # the EMA target
    assert "train/aux_loss" in by_aux["raw"] and "train/aux_loss" not in by_aux["none"]
    # the raw state's probe is a property of the task: the same for every run
    assert len({m["probe/state_future_r2"] for m in by_aux.values()}) == 1

    out = tmp_path / "reports" / "policy_jepa_smoke"
    report = (out / "report.md").read_text()
    assert "Runs with results: 6 of 6 expected." in report and "| plumbing |" in report and "PASS" in report
    assert "| floor: still |" in report and "| ceiling: expert |" in report
    assert "_no results yet_" not in report
    for png in ("success_vs_step.png", "probe_vs_step.png", "action_loss_vs_step.png"):
        assert (out / png).stat().st_size > 1000
