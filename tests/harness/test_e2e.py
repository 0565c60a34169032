"""End to end through the real CLI, real MLflow (sqlite in a temp dir) and real worker processes."""

from pathlib import Path

import pytest
from conftest import child_runs, cli, report_dir

from harness.track import Tracker

pytestmark = pytest.mark.slow


def test_smoke_suite_end_to_end_and_resume(root, tmp_path):
    suite = str(root / "suites" / "smoke.yaml")
    proc = cli(root, tmp_path, "run", suite, "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    children, parents = child_runs(tmp_path, "smoke")
    assert len(children) == 4 and len(parents) == 1
    for r in children:
        assert r.info.status == "FINISHED"
        assert r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert r.data.params["model.name"] == "transformer" and r.data.params["task.op"] == "add"
        assert r.data.params["model.pos_emb"] in ("abs", "rel_k")
        assert {"exact/len_03", "exact/len_06", "train/loss", "token_acc/len_04"} <= set(r.data.metrics)
        assert 0.0 <= r.data.metrics["exact/len_03"] <= 1.0
        assert r.data.tags["git_sha"] and r.data.tags["versions.torch"].startswith("2.13")
    # per-step training metrics were logged (batched), not just the last value
    t = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    hist = t.client.get_metric_history(children[0].info.run_id, "train/loss")
    assert [m.step for m in hist] == [1, 10, 20, 30, 40]
    arts = {a.path for a in t.client.list_artifacts(children[0].info.run_id)}
    assert {"config.json", "model.pt"} <= arts

    report = (tmp_path / "reports" / "smoke" / "report.md").read_text()
    assert "| abs | 2 |" in report and "| rel_k | 2 |" in report and "length 6" in report
    assert (tmp_path / "reports" / "smoke" / "exact_vs_length.png").stat().st_size > 1000

    again = cli(root, tmp_path, "run", suite, "--workers", "2")
    assert again.returncode == 0, again.stderr
    assert "4 already finished, 0 to run" in again.stderr
    children2, parents2 = child_runs(tmp_path, "smoke")
    assert len(children2) == 4 and len(parents2) == 1  # nothing trained, no new parent


def test_failures_are_contained(root, tmp_path):
    suite = str(root / "suites" / "smoke.yaml")
    proc = cli(
        root, tmp_path, "run", suite, "--workers", "2", "seeds=[0]", "scheduler.max_retries=1",
        "ablations.crash.training.fault.kind=raise", "ablations.crash.training.fault.at_step=3",
        "ablations.killed.training.fault.kind=exit",
        "ablations.nan.training.fault.kind='nan'", "ablations.nan.training.fault.at_step=5",  # quoted: Hydra reads a bare nan as a float
    )
    assert proc.returncode == 1
    assert "failed runs:" in proc.stderr and "crash seed=0" in proc.stderr and "killed seed=0" in proc.stderr
    failed = [ln for ln in proc.stderr.splitlines() if ln.startswith("FAILED crash seed=0")]
    assert failed and "InjectedFault" in failed[0]  # the run's own error line, not only its log's path
    assert "retrying crash seed=0 (attempt 2)" in proc.stderr
    children, _ = child_runs(tmp_path, "smoke")
    # crash and killed are retried once (max_retries=1): two FAILED attempts each
    assert len(children) == 7
    attempts = sorted((r.data.tags["ablation"], r.data.tags["attempt"]) for r in children if r.info.status == "FAILED")
    assert attempts == [("crash", "0"), ("crash", "1"), ("killed", "0"), ("killed", "1")]
    by_ablation = {r.data.tags["ablation"]: r for r in children}
    crash = by_ablation["crash"]
    assert crash.info.status == "FAILED" and crash.data.tags["outcome"] == "failed"
    t = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    tb = Path(t.client.download_artifacts(crash.info.run_id, "traceback.txt", str(tmp_path))).read_text()
    assert "InjectedFault: injected fault at step 3" in tb
    killed = by_ablation["killed"]
    assert killed.info.status == "FAILED" and killed.data.tags["exit_code"] == "3"
    nan = by_ablation["nan"]
    assert nan.info.status == "FINISHED" and nan.data.tags["outcome"] == "diverged"
    assert max(m.step for m in t.client.get_metric_history(nan.info.run_id, "train/loss")) == 5
    assert nan.data.metrics["train/diverged_at_step"] == 5
    finished = [r for r in children if r.data.tags["ablation"] == "none"]
    assert len(finished) == 2 and all(r.info.status == "FINISHED" for r in finished)
    assert (report_dir(tmp_path, "smoke") / "report.md").exists()  # a variant (overrides): reports/smoke+<hash>/


HEADROOM = """\
name: headroom
description: the same comparison on sklearn's digits and on shapes whose label is invisible (amplitude 0)
defaults:
  task: {name: digits, image_size: 8}
  model: {name: vit, patch_size: 2, d_model: 16, n_layers: 1, n_heads: 2}
  method: {name: raw, probes: [{name: linear}]}
  training: {steps: 1, batch_size: 8}
grid:
  task.name: [digits, shapes]
when:
  - if: {task.name: shapes}
    set: {task: {name: shapes, image_size: 8, shape_amplitude: 0.0, n_classes: 3, probe_train_size: 300, probe_test_size: 300}}
seeds: [0, 1, 2]
ablations:  # the untrained encoder of each task (ablations are not crossed with the grid)
  untrained_digits: {method: {name: mae, probes: [{name: linear}]}, optimizer.lr: 1.0e-12}
  untrained_shapes:
    task: {name: shapes, image_size: 8, shape_amplitude: 0.0, n_classes: 3, probe_train_size: 300, probe_test_size: 300}
    method: {name: mae, probes: [{name: linear}]}
    optimizer.lr: 1.0e-12
references:
  untrained: {role: floor, where: {method.name: mae}, match: [task.name]}
  pixels: {role: ceiling, where: {method.name: raw}, match: [task.name]}
claims:
  - id: visible
    text: the pixels probe above the untrained encoder where the label is visible
    check: {kind: beats, metric: probe/linear, where: {task.name: digits}, a: {where: {method.name: raw}}, b: {where: {method.name: mae}}}
  - id: invisible
    text: the same where the label is invisible
    check: {kind: beats, metric: probe/linear, where: {task.name: shapes}, a: {where: {method.name: raw}}, b: {where: {method.name: mae}}}
"""


def test_a_task_no_arm_can_learn_is_untestable_and_a_learnable_one_decides(root, tmp_path):
    """Through the real CLI: the same claim PASSes where the ceiling (here the pixels themselves) clears the floor
    (the untrained encoder) and is UNTESTABLE where nothing can read the label; `report --check` exits 4."""
    suite = tmp_path / "headroom.yaml"
    suite.write_text(HEADROOM)
    proc = cli(root, tmp_path, "run", str(suite), "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    assert "claim PASS         visible:" in proc.stderr
    assert "claim UNTESTABLE   invisible:" in proc.stderr and "is not verified above 0" in proc.stderr
    report = (tmp_path / "reports" / "headroom" / "report.md").read_text()
    assert "headroom (ceiling − floor)" in report and "1 PASS, 1 UNTESTABLE" in report
    check = cli(root, tmp_path, "report", str(suite), "--check")
    assert check.returncode == 4 and "claims untestable: invisible" in check.stderr


def test_a_variant_reports_to_its_own_folder_and_compare_puts_two_side_by_side(root, tmp_path):
    suite = str(root / "suites" / "smoke.yaml")
    assert cli(root, tmp_path, "run", suite, "--workers", "2").returncode == 0
    variant = cli(root, tmp_path, "run", suite, "defaults.optimizer.lr=0.01", "--name", "lr01", "--workers", "2")
    assert variant.returncode == 0, variant.stderr
    plain, other = tmp_path / "reports" / "smoke" / "report.md", tmp_path / "reports" / "smoke+lr01" / "report.md"
    assert plain.exists() and other.exists()  # a variant no longer overwrites the suite's report
    assert "Variant 'lr01': the suite with the overrides `defaults.optimizer.lr=0.01`" in other.read_text()
    assert "Variant" not in plain.read_text()
    unnamed = cli(root, tmp_path, "report", suite, "defaults.optimizer.lr=0.01")
    assert unnamed.returncode == 0 and "/reports/smoke+" in unnamed.stdout  # named by the overrides' hash
    cmp = cli(root, tmp_path, "compare", suite, "--b", "defaults.optimizer.lr=0.01")
    assert cmp.returncode == 0, cmp.stderr
    assert "## Exact match by test length (addition): B − A" in cmp.stdout and "2 paired" in cmp.stdout
    path = Path(cmp.stdout.strip().splitlines()[-1])  # named by both variants' report folders
    assert path.name == "compare.md" and path.parent.name.startswith("smoke--vs--smoke+") and path.exists()
