"""The motion_jepa suite end to end through the real CLI (its smoke version), real MLflow and worker processes."""

import math

import pytest
from conftest import child_runs, cli

pytestmark = pytest.mark.slow


def test_motion_jepa_smoke_suite(root, tmp_path):
    proc = cli(root, tmp_path, "run", str(root / "suites" / "motion_jepa_smoke.yaml"), "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    children, _ = child_runs(tmp_path, "motion_jepa_smoke")
    arms = {r.data.tags["ablation"]: r for r in children}
    assert sorted(arms) == ["flow_only", "joint_no_vc", "none", "untrained", "vicreg_only"] and len(children) == 5
    for arm, r in arms.items():
        m = r.data.metrics
        assert r.info.status == "FINISHED" and r.data.tags["outcome"] == "finished"
        assert 0.0 <= m["dense/miou"] <= 1.0 and 0.0 <= m["probe/linear"] <= 1.0
        assert ("flow/epe" in m) == (arm != "vicreg_only")  # the flow head exists in the flow arms only
        assert ("train/vicreg/inv" in m) == (arm != "flow_only")
        assert ("train/varcov/var" in m) == (arm in ("none", "flow_only", "untrained"))  # untrained: the joint arm, 1 step
    flow = arms["flow_only"].data.metrics
    assert math.isclose(flow["flow/log_epe"], math.log(flow["flow/epe"]), rel_tol=1e-9)
    out = tmp_path / "reports" / "motion_jepa_smoke"
    report = (out / "report.md").read_text()
    assert "Runs with results: 5 of 5 expected." in report and "| plumbing |" in report and "PASS" in report
    assert "| floor: untrained |" in report
    for png in ("epe_vs_step.png", "probe_vs_step.png", "flow_feature_vs_step.png"):
        assert (out / png).stat().st_size > 1000
