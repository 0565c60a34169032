"""The signal_jepa suite end to end through the real CLI (its smoke version), real MLflow and worker processes."""

import pytest
from conftest import child_runs, cli

pytestmark = pytest.mark.slow


def test_signal_jepa_smoke_suite(root, tmp_path):
    proc = cli(root, tmp_path, "run", str(root / "suites" / "signal_jepa_smoke.yaml"), "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    children, _ = child_runs(tmp_path, "signal_jepa_smoke")
    by_stage = {}
    for r in children:
        assert r.info.status == "FINISHED" and r.data.tags["outcome"] == "finished"
        by_stage.setdefault(r.data.tags["stage"], []).append(r)
    pretrain, probe_mi, heads = by_stage["pretrain"], by_stage["probe_mi"], by_stage["heads"]
    assert sorted(r.data.tags["ablation"] for r in pretrain) == ["eeg_untrained", "eeg_untrained_novc", "fmri_anatomical", "fmri_gradient",
                                                                 "fmri_mae", "fmri_multiblock", "fmri_sincos_index", "fmri_untrained",
                                                                 "none", "none"]
    # the ceilings: each untrained encoder trained with labels (stage supervised), then probed (probe_supervised)
    assert len(by_stage["supervised"]) == len(by_stage["probe_supervised"]) == 3
    assert all("probe/linear" in r.data.metrics for r in by_stage["probe_supervised"])
    for r in pretrain + probe_mi:
        assert {"probe/linear", "probe/knn", "collapse/eff_rank"} <= set(r.data.metrics)
    assert sorted(r.data.params["method.mask.name"] for r in pretrain if r.data.tags["ablation"] == "none") == ["random", "spatial"]
    assert {r.data.params["task.paradigm"] for r in probe_mi} == {"mi"} and len(probe_mi) == 4  # the 2 arms, the 2 floors
    heads = [r for r in heads if r.data.params["source.optimizer.lr"] != "1e-12"]  # the floor: the heads on the untrained encoder
    assert sorted(r.data.params["method.head.name"] for r in heads) == ["contextual", "post_local", "pre_local"]
    assert all(0.0 <= r.data.metrics["finetune/score"] <= 1.0 for r in heads)
    out = tmp_path / "reports" / "signal_jepa_smoke"
    report = (out / "report.md").read_text()
    assert "| plumbing |" in report and "PASS" in report and "| floor: untrained |" in report and "| ceiling: supervised |" in report
    for png in ("eeg_probe_vs_step.png", "fmri_probe_vs_step.png", "target_std_vs_step.png", "target_rankme_vs_step.png"):
        assert (out / png).stat().st_size > 1000
