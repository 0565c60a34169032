"""The audio_jepa suite end to end through the real CLI (its smoke version), real MLflow and worker processes."""

import pytest
from conftest import child_runs, cli

pytestmark = pytest.mark.slow


def test_audio_jepa_smoke_suite(root, tmp_path):
    proc = cli(root, tmp_path, "run", str(root / "suites" / "audio_jepa_smoke.yaml"), "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    runs, _ = child_runs(tmp_path, "audio_jepa_smoke")
    assert len(runs) == 13  # 9 pretraining runs (below, and the uncoupled task's untrained encoder), 2 supervised ceilings, their 2 probes
    staged = [r for r in runs if "source.run_id" in r.data.params]
    assert sorted(r.data.params["method.name"] for r in staged) == ["finetune", "finetune", "probe", "probe"]
    assert all("probe/linear" in r.data.metrics for r in staged if r.data.params["method.name"] == "probe")
    children = [r for r in runs if "source.run_id" not in r.data.params and r.data.tags["ablation"] != "untrained_uncoupled"]
    assert len(children) == 8  # coupled: 4 masking arms; uncoupled: random blocks, curriculum; MAE; untrained
    for r in children:
        assert r.info.status == "FINISHED" and r.data.tags["outcome"] == "finished"
        assert {"probe/linear", "probe/knn", "collapse/eff_rank", "collapse/content_share", "eval/step"} <= set(r.data.metrics)
    arms = sorted((r.data.params["task.harmonic_coupling"], r.data.params["method.mask.name"], r.data.params.get("method.mask.inverse", "-"))
                  for r in children if r.data.tags["ablation"] == "none")
    assert arms == [("False", "curriculum", "False"), ("False", "multiblock", "-"), ("True", "curriculum", "False"),
                    ("True", "curriculum", "True"), ("True", "multiblock", "-"), ("True", "strips", "-")]
    curricula = [r for r in children if r.data.params["method.mask.name"] == "curriculum"]
    for r in curricula:  # the schedule is logged with the training metrics: p_TF rises (falls for the inverse)
        p = r.data.metrics["train/mask/p_hard"]
        assert 0.0 < p <= 1.0 and ("train/mask/hard" in r.data.metrics)
    out = tmp_path / "reports" / "audio_jepa_smoke"
    report = (out / "report.md").read_text()
    assert "Runs with results: 13 of 13 expected." in report and "| plumbing |" in report and "PASS" in report
    assert "| floor: untrained |" in report and "| ceiling: supervised |" in report  # the reference rows of the probe tables
    assert "_no results yet_" not in report
    for png in ("probe_vs_step.png", "curriculum_schedule.png", "target_std_vs_step.png", "target_rankme_vs_step.png"):
        assert (out / png).stat().st_size > 1000
