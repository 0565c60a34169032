"""The multimodal_jepa suite end to end through the real CLI (its smoke version), real MLflow and worker processes."""

from collections import Counter

import pytest
from conftest import child_runs, cli

pytestmark = pytest.mark.slow


def test_multimodal_jepa_smoke_suite(root, tmp_path):
    proc = cli(root, tmp_path, "run", str(root / "suites" / "multimodal_jepa_smoke.yaml"), "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    children, _ = child_runs(tmp_path, "multimodal_jepa_smoke")
    for r in children:
        assert r.info.status == "FINISHED" and r.data.tags["outcome"] == "finished", r.data.tags
    stages = Counter(r.data.tags["stage"] for r in children)
    # pretrain: temporal, tube, untrained, towers, untrained towers; the 3 UI encoders probed on 2-step intents; 3 frozen
    # decoders (2 JEPA, the untrained floor) and 1 from scratch; fusion frozen / unfrozen / text removed; late fusion of
    # the towers and of the untrained ones; the 3 fused encoders probed; the supervised UI ceiling and its probe
    assert stages == {"pretrain": 5, "ordered": 3, "decode": 3, "scratch": 1, "fusion": 3, "late": 2, "fused": 3, "supervised": 1,
                      "ordered_supervised": 1}
    by_stage = {s: [r for r in children if r.data.tags["stage"] == s] for s in stages}
    for r in by_stage["decode"] + by_stage["scratch"]:
        assert {"decode/exact", "decode/token_f1", "decode/loss", "train/token_acc"} <= set(r.data.metrics)
    for r in by_stage["ordered"] + by_stage["late"] + by_stage["fused"]:
        assert 0 <= r.data.metrics["probe/linear"] <= 1
    towers = [r for r in by_stage["pretrain"] if r.data.params["method.name"] == "pair_jepa" and r.data.tags["ablation"] == "towers"]
    assert len(towers) == 1 and {"train/image/target_std", "train/text/target_std", "probe/linear"} <= set(towers[0].data.metrics)
    arms = sorted((r.data.params["method.freeze"], r.data.params["model.use_text"]) for r in by_stage["fusion"])
    assert arms == [("False", "True"), ("True", "False"), ("True", "True")]
    out = tmp_path / "reports" / "multimodal_jepa_smoke"
    report = (out / "report.md").read_text()
    assert "Runs with results: 22 of 22 expected." in report and "| plumbing |" in report and "PASS" in report
    for png in ("ui_target_std.png", "decoder_token_acc.png", "ti_target_rankme.png"):
        assert (out / png).stat().st_size > 1000
