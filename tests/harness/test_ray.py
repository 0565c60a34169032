"""The Ray backend on a local Ray cluster: fractional GPUs (faked), log files, stop_all, and the smoke
suite through the real CLI with a failing run.  Needs `make install-scale`."""

import os
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

from conftest import child_runs, cli  # noqa: E402

from harness.backends import Job, Pool  # noqa: E402
from harness.backends.ray_backend import RayBackend  # noqa: E402
from harness.track import Tracker  # noqa: E402

pytestmark = pytest.mark.slow

# each job: copy its input file (shipped with the task) to its output, record the slot env, then wait
# at a barrier until the other job has started too (only possible if both share the one GPU at once)
BARRIER_JOB = """
import os, sys, time
inp, out, barrier = sys.argv[1:4]
open(out, "w").write(open(inp).read() + " " + os.environ["CUDA_VISIBLE_DEVICES"] + " " + os.environ["OMP_NUM_THREADS"])
open(os.path.join(barrier, str(os.getpid())), "w").close()
deadline = time.time() + 60
while len(os.listdir(barrier)) < 2:
    if time.time() > deadline:
        sys.exit(9)
    time.sleep(0.05)
print("passed the barrier")
sys.exit(int(open(inp).read()))
"""


def test_two_runs_share_a_fake_gpu_and_report_exit_codes(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HARNESS_FAKE_GPUS", "1")  # the local cluster gets one (fake) GPU
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    jobs = []
    for i, code in enumerate((0, 4)):
        (tmp_path / f"in{i}").write_text(str(code))
        argv = [sys.executable, "-c", BARRIER_JOB, str(tmp_path / f"in{i}"), str(tmp_path / f"out{i}"), str(barrier)]
        jobs.append(Job(f"j{i}", argv, tmp_path / "logs" / f"j{i}.log"))
    started, ended = [], {}
    backend = RayBackend(workers=2, slots_per_gpu=2)
    pool = Pool(backend, tick_s=0.2)
    pool.run(jobs, lambda j, s: started.append((j.key, s.index)) or [], lambda j, rc: ended.update({j.key: rc}))
    assert (backend.capacity, backend.gpus_per_run) == (2, 0.5)
    assert ended == {"j0": 0, "j1": 4}  # both passed the barrier: they ran at the same time on one GPU
    assert sorted(s for _, s in started) == [0, 1]
    assert (tmp_path / "out0").read_text() == "0 0 1" and (tmp_path / "out1").read_text() == "4 0 1"
    log = (tmp_path / "logs" / "j1.log").read_text()
    assert "CUDA_VISIBLE_DEVICES='0'" in log and "passed the barrier" in log

    import ray

    assert ray.is_initialized()  # kept for the next run() (a retry round, a tuning wave) ...
    again = Job("j2", [sys.executable, "-c", "import sys; sys.exit(5)"], tmp_path / "logs" / "j2.log")
    pool.run([again], lambda j, s: [], lambda j, rc: ended.update({j.key: rc}))
    assert ended["j2"] == 5
    pool.close()
    assert not ray.is_initialized()  # ... and shut down by close()


def test_stop_all_kills_the_worker_process(tmp_path: Path):
    pid_file = tmp_path / "pid"
    code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(600)"
    job = Job("sleeper", [sys.executable, "-c", code], tmp_path / "sleeper.log")
    backend = RayBackend(workers=1)
    pool = Pool(backend, tick_s=0.2)

    def tick(n_running):
        if pid_file.exists() and pid_file.read_text():
            raise KeyboardInterrupt

    t0 = time.monotonic()
    with pool, pytest.raises(KeyboardInterrupt):
        pool.run([job], lambda j, s: [], lambda j, rc: pytest.fail("the sleeper cannot end by itself"), tick)
    assert pool.interrupted == [job] and not backend.running
    pid = int(pid_file.read_text())
    while time.monotonic() - t0 < 60:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"worker {pid} still alive after stop_all")


def test_smoke_suite_on_ray_with_a_failing_run(root, tmp_path):
    suite = str(root / "suites" / "smoke.yaml")
    proc = cli(
        root, tmp_path, "run", suite, "--backend", "ray", "--workers", "2", "defaults.training.steps=20",
        "ablations.crash.training.fault.kind=raise", "ablations.crash.training.fault.at_step=1",
    )
    assert proc.returncode == 1, proc.stderr
    assert "failed runs:" in proc.stderr and "crash seed=0" in proc.stderr and "crash seed=1" in proc.stderr
    children, parents = child_runs(tmp_path, "smoke")
    assert len(parents) == 1 and parents[0].info.status == "FAILED"
    assert len(children) == 6
    crashed = [r for r in children if r.data.tags["ablation"] == "crash"]
    finished = [r for r in children if r.data.tags["ablation"] == "none"]
    assert len(crashed) == 2 and all(r.info.status == "FAILED" and r.data.tags["outcome"] == "failed" for r in crashed)
    assert len(finished) == 4
    for r in finished:
        assert r.info.status == "FINISHED" and r.data.params["training.steps"] == "20"
        assert {"exact/len_03", "exact/len_06", "train/loss"} <= set(r.data.metrics)
    t = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    tb = Path(t.client.download_artifacts(crashed[0].info.run_id, "traceback.txt", str(tmp_path))).read_text()
    assert "InjectedFault: injected fault at step 1" in tb
    assert [m.step for m in t.client.get_metric_history(finished[0].info.run_id, "train/loss")] == [1, 10, 20]
    logs = list(tmp_path.rglob("logs/smoke/*.log"))
    assert len(logs) == 6 and all(p.read_text().startswith("[ray] node ") for p in logs)


@pytest.mark.slow
def test_tuning_trials_run_on_ray(root, tmp_path):
    """`harness tune --backend ray`: the trials are Ray tasks (their logs say so), report to their
    studies (pruning included) and end with the requested number of finished trials."""
    import optuna

    from harness.store import JOURNAL_NAME
    from harness.tune.trial import open_storage

    proc = cli(root, tmp_path, "tune", str(root / "suites" / "smoke_tune.yaml"), "--backend", "ray", "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    storage = open_storage(str(tmp_path / JOURNAL_NAME))
    studies = [optuna.load_study(study_name=s.study_name, storage=storage) for s in optuna.get_all_study_summaries(storage)]
    states = [t.state.name for s in studies for t in s.trials]
    assert len(studies) == 2 and len(states) == 8 and set(states) <= {"COMPLETE", "PRUNED"} and "PRUNED" in states
    logs = list(tmp_path.rglob("logs/smoke_tune/tune/*.log"))
    assert len(logs) == 8 and all(p.read_text().startswith("[ray] node ") for p in logs)
    children, _ = child_runs(tmp_path, "smoke_tune")
    assert sorted(c.data.tags["trial.state"] for c in children) == sorted(states)
