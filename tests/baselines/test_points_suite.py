"""The point_jepa suite end to end through the real CLI (its smoke version), real MLflow and worker processes."""

import pytest
from conftest import child_runs, cli

pytestmark = pytest.mark.slow


def test_point_jepa_smoke_suite(root, tmp_path):
    proc = cli(root, tmp_path, "run", str(root / "suites" / "point_jepa_smoke.yaml"), "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    children, _ = child_runs(tmp_path, "point_jepa_smoke")
    pre = [r for r in children if r.data.tags["stage"] == "pretrain"]
    probe = [r for r in children if r.data.tags["stage"] == "probe"]
    assert len(pre) == len(probe) == 6  # 2 sequencers + 4 ablations, one seed; one probe run each
    for r in children:
        assert r.info.status == "FINISHED" and r.data.tags["outcome"] == "finished"
    for r in probe:  # the probe stage read each pretrained encoder: logistic regression, k-NN, few-shot
        m = r.data.metrics
        assert {"probe/linear", "probe/knn", "probe/fewshot", "collapse/log2_rank_centered"} <= set(m)
        assert 0.0 <= m["probe/fewshot"] <= 1.0
    jepa = [r for r in pre if r.data.params["method.name"] == "jepa"]
    assert sorted(r.data.params["method.mask.order"] for r in jepa if r.data.tags["ablation"] == "none") == ["greedy", "none"]
    for r in jepa:  # per-step collapse monitors, the sequencer's step distance, the probe over training
        assert {"train/pred_std", "train/target_std", "train/target_rankme", "train/mask/step_distance"} <= set(r.data.metrics)
    cad = [r for r in pre if r.data.tags["ablation"] == "short_context_aware"]
    assert len(cad) == 1 and cad[0].data.params["method.predictor.name"] == "context_aware"
    mae = [r for r in pre if r.data.tags["ablation"] == "mae"]
    assert mae[0].data.params["method.reconstruction.name"] == "chamfer" and mae[0].data.metrics["train/loss"] > 0

    out = tmp_path / "reports" / "point_jepa_smoke"
    report = (out / "report.md").read_text()
    assert "Runs with results: 14 of 14 expected." in report and "| plumbing |" in report and "PASS" in report
    assert "| floor: untrained |" in report and "| ceiling: supervised |" in report  # the supervised stage and its probe
    assert "probe fewshot" in report
    for png in ("probe_vs_step.png", "probe_vs_step_short.png", "target_std_vs_step.png", "loss_vs_step.png"):
        assert (out / png).stat().st_size > 1000
