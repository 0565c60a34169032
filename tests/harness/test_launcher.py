"""The Hydra launcher plugin (`hydra/launcher=harness`) end to end: examples/hydra_app/app.py's multirun on the
harness pool with 2 workers (2 pretend GPUs: one job pinned to each), killed mid-sweep (SIGKILL), started
again: the jobs that had finished are not run again, the others are, one FINISHED MLflow child run per job."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.tags import Status, Tag
from harness.track import Tracker

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "examples" / "hydra_app" / "app.py"
pytestmark = pytest.mark.slow


def multirun(tmp: Path, *overrides: str) -> list[str]:
    return [sys.executable, str(APP), "-m", "hydra/launcher=harness", "hydra.launcher.workers=2",
            f"hydra.launcher.tracking_uri=sqlite:///{tmp}/mlflow.db", f"hydra.sweep.dir={tmp}/multirun", f"ledger={tmp}/ledger",
            *overrides]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true", "HARNESS_FAKE_GPUS": "2"}


def finished(tmp: Path) -> dict[str, list]:
    """overrides of each job -> its FINISHED child runs."""
    t = Tracker(f"sqlite:///{tmp}/mlflow.db")
    exp = t.client.get_experiment_by_name("app")
    out: dict[str, list] = {}
    for r in t.client.search_runs([exp.experiment_id], f"attributes.status = '{Status.FINISHED}'"):
        if Tag.RUN_ID in r.data.tags:
            out.setdefault(f"lr={r.data.params['lr']} seed={r.data.params['seed']}", []).append(r)
    return out


def ledger(tmp: Path) -> list[str]:
    path = tmp / "ledger"
    return [" ".join(line.split()[:2]) for line in path.read_text().splitlines()] if path.exists() else []


def test_multirun_killed_and_rerun_runs_no_finished_job_twice(tmp_path):
    cmd = multirun(tmp_path, "lr=0.01,0.1", "seed=0,1,2", "sleep=1")
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while len(ledger(tmp_path)) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[0]
    time.sleep(0.5)  # let the first jobs mark their runs FINISHED
    proc.send_signal(signal.SIGKILL)  # the launcher dies at once; its workers die with it (PR_SET_PDEATHSIG)
    proc.wait(timeout=30)
    time.sleep(2.0)  # its workers die through PDEATHSIG, a moment later: a job may still finish (and count) meanwhile
    before = finished(tmp_path)
    assert 1 <= len(before) < 6, sorted(before)  # killed mid-sweep

    rerun = subprocess.run(cmd, cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"6 jobs, {len(before)} already finished (skipped), {6 - len(before)} to run" in rerun.stdout + rerun.stderr
    after = finished(tmp_path)
    jobs = {f"lr={lr} seed={s}" for lr in (0.01, 0.1) for s in (0, 1, 2)}
    assert set(after) == jobs and all(len(runs) == 1 for runs in after.values())  # one FINISHED run per job
    runs = ledger(tmp_path)
    assert all(runs.count(job) == 1 for job in before), runs  # a finished job never ran again
    assert set(runs) == jobs
    for (r,) in after.values():
        assert r.data.metrics["return_value"] >= 0 and r.data.tags[Tag.PARENT]
        assert Path(r.data.tags[Tag.HYDRA_JOB_DIR], ".hydra", "config.yaml").exists()  # Hydra's outputs, where Hydra puts them
    gpus = {line.split("gpu=")[1] for line in (tmp_path / "ledger").read_text().splitlines()}
    assert gpus == {"0", "1"}  # one slot per (pretend) GPU, each job pinned to its own


def test_a_failed_job_is_retried(tmp_path):
    done = subprocess.run(multirun(tmp_path, "lr=0.1", "seed=0,1", "hydra.launcher.max_retries=1", f"fail_once={tmp_path}/flag"),
                          cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(finished(tmp_path)) == {"lr=0.1 seed=0", "lr=0.1 seed=1"} and len(ledger(tmp_path)) == 2
    t = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    failed = t.client.search_runs([t.client.get_experiment_by_name("app").experiment_id], "attributes.status = 'FAILED'")
    assert len([r for r in failed if Tag.RUN_ID in r.data.tags]) == 2  # each job's first attempt, then its retry
    assert all(r.data.tags[Tag.OUTCOME] == "failed" for r in failed)
    text = t.client.download_artifacts(failed[0].info.run_id, "traceback.txt", str(tmp_path))
    assert "failing once, as asked (fail_once)" in Path(text).read_text()
