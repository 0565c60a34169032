"""Fault tolerance of the orchestrator, each property through the real CLI, MLflow (sqlite) and workers:
SIGKILL of the orchestrator, a worker killed mid-run, Ctrl-C, SIGTERM, concurrent writers, checkpoint
resume, the suite lock.  Plus fast checks of the pieces (lock, parent-death signal, trial filter)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import child_runs, cli
from faultkit import expected_steps, output, wait_for

from harness.state import SuiteBusy, SuiteLock, state_dir
from harness.track import Tracker


# ---------------------------------------------------------------- helpers
def suite(tmp_path: Path, root: Path, name: str, diff: dict) -> Path:
    """A suite file: suites/smoke.yaml with `diff` applied (include + diff)."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"include": str(root / "suites" / "smoke.yaml"), "name": name, **diff}))
    return path


def start(root: Path, cwd: Path, *args: str) -> subprocess.Popen:
    """`harness run ARGS` in the background (output to cwd/run-<n>.log, read with `output`)."""
    env = {**os.environ, "PYTHONPATH": str(root), "MLFLOW_DISABLE_TELEMETRY": "true"}
    log = open(cwd / f"run-{len(list(cwd.glob('run-*.log')))}.log", "w")
    argv = [sys.executable, "-m", "harness.cli", "run", *args, "--no-report",
            "--tracking-uri", f"sqlite:///{cwd}/mlflow.db", "--reports-dir", str(cwd / "reports")]
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    proc.log_path = Path(log.name)
    log.close()
    return proc


def children_of(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process exited while we listed /proc
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as dead)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def assert_nothing_running(cwd: Path, name: str) -> None:
    children, parents = child_runs(cwd, name)
    assert not [r for r in children + parents if r.info.status == "RUNNING"]


def finished_once_each(cwd: Path, name: str, n: int) -> dict[str, str]:
    """Every run_id FINISHED exactly once (no duplicates); returns run_id -> mlflow id."""
    children, _ = child_runs(cwd, name)
    done = [r for r in children if r.info.status == "FINISHED"]
    ids = [r.data.tags["run_id"] for r in done]
    assert len(ids) == len(set(ids)) == n, ids
    return {r.data.tags["run_id"]: r.info.run_id for r in done}


def long_runs(steps: int, seeds: list[int]) -> dict:
    """Runs long enough to be caught in training (one position embedding, few evaluations), with a
    checkpoint every 10 steps: its file appearing tells that a run is in training, at once."""
    return {"defaults": {"training": {"steps": steps, "checkpoint_every": 10}, "evaluation": {"every": steps // 2}},
            "grid": {"model.pos_emb": ["abs"]}, "seeds": seeds}


def checkpoint_appears(cwd: Path, name: str) -> list[Path]:
    """Wait (polling the file system only, fast) for a run of the suite to save a checkpoint."""
    return wait_for(lambda: list((cwd / ".harness" / "checkpoints" / name).glob("*/resume.pt")), 150, "a checkpoint", 0.05)


# ---------------------------------------------------------------- fast checks of the pieces
def test_suite_lock_excludes_a_second_holder_and_names_the_first(tmp_path):
    path = tmp_path / "locks" / "s.lock"
    with SuiteLock(path, "s"):
        with pytest.raises(SuiteBusy, match=rf"^suite s is already being run by pid {os.getpid()} \(lock "):
            with SuiteLock(path, "s"):
                pass
    with SuiteLock(path, "s"):  # released on exit: free again
        assert path.read_text().strip() == str(os.getpid())


def test_state_dir_sits_next_to_a_sqlite_store(tmp_path, monkeypatch):
    assert state_dir(f"sqlite:///{tmp_path}/x/mlflow.db") == tmp_path / "x" / ".harness"
    monkeypatch.chdir(tmp_path)
    assert state_dir("http://127.0.0.1:5000") == tmp_path / ".harness"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_worker_dies_with_its_parent(tmp_path, root):
    """A process that called die_with_parent gets SIGTERM when its parent is SIGKILLed."""
    child = (
        "import os, sys, time; from harness.worker import die_with_parent;"
        "ok = die_with_parent(os.getppid()); open(sys.argv[1], 'w').write(str(os.getpid()) + ' ' + str(ok)); time.sleep(60)"
    )
    middle = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child!r}, {str(tmp_path / 'pid')!r}]); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", middle], env={**os.environ, "PYTHONPATH": str(root)})
    text = wait_for(lambda: (tmp_path / "pid").exists() and (tmp_path / "pid").read_text(), 20, "the grandchild")
    pid, ok = text.split()
    assert ok == "True" and alive(int(pid))
    proc.kill()
    proc.wait()
    wait_for(lambda: not alive(int(pid)), 5, "the grandchild to die with its parent")


def test_die_with_parent_tells_when_the_parent_is_already_gone(root):
    code = "import os; from harness.worker import die_with_parent as d; print(d(os.getppid()), d(os.getppid() + 10**6))"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True)
    assert out.stdout.split() == ["True", "False"], out.stderr


def test_trials_are_not_results_but_are_reaped(tmp_path):
    t = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    t.setup()
    exp = t.experiment("s")
    parent = t.start_parent(exp, "p", {})
    real = t.create_child(exp, parent, "real", {"run_id": "a"})
    trial = t.create_child(exp, parent, "trial", {"run_id": "b", "harness.kind": "trial"})
    t.terminate(real, "FINISHED")
    running_trial = t.create_child(exp, parent, "trial2", {"run_id": "a", "harness.kind": "trial"})
    t.terminate(trial, "FINISHED")
    assert t.finished(exp) == {"a": real} and [r.mlflow_id for r in t.results(exp)] == [real]
    assert sorted(t.reap_running(exp)) == ["p", "trial2"]
    assert t.state(running_trial) == ("KILLED", "orphaned") and t.state(parent) == ("KILLED", "orphaned")
    assert t.state(real) == ("FINISHED", "")


# ---------------------------------------------------------------- end to end
@pytest.mark.slow
def test_orchestrator_sigkill_then_rerun_loses_and_duplicates_nothing(root, tmp_path):
    path = suite(tmp_path, root, "fk", long_runs(200, [0, 1, 2]))
    proc = start(root, tmp_path, str(path), "--workers", "1")
    first = checkpoint_appears(tmp_path, "fk")[0].parent.name  # run_id of the run in training
    # one worker: the first run ends (its checkpoint goes) before the second saves one; kill then
    ckpts = tmp_path / ".harness" / "checkpoints" / "fk"
    second = wait_for(lambda: [c for c in ckpts.glob("*/resume.pt") if c.parent.name != first], 150, "a second run's checkpoint", 0.05)
    workers = children_of(proc.pid)  # the warm process, which forks each run
    assert len(workers) == 1 and alive(workers[0])
    jobs = children_of(workers[0])
    assert len(jobs) == 1 and alive(jobs[0])  # the second run, in training
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    wait_for(lambda: not alive(workers[0]), 10, "the orphaned worker to die")
    assert not alive(jobs[0])  # reaped before its warm process exits: nothing writes to the store after it
    children, parents = child_runs(tmp_path, "fk")
    assert {r.data.tags["run_id"]: r.info.status for r in children} == {first: "FINISHED", second[0].parent.name: "KILLED"}
    first_mlflow_id = children[[r.data.tags["run_id"] for r in children].index(first)].info.run_id
    victim = next(r for r in children if r.info.status == "KILLED")
    # its worker got SIGTERM when the orchestrator died (PR_SET_PDEATHSIG) and closed its own run
    assert victim.data.tags["outcome"] == "killed"
    assert [p.info.status for p in parents] == ["RUNNING"]  # nobody closed the dead orchestrator's parent

    again = cli(root, tmp_path, "run", str(path), "--workers", "1", "--no-report")
    assert again.returncode == 0, again.stderr
    assert "1 already finished, 2 to run" in again.stderr
    children, parents = child_runs(tmp_path, "fk")
    old_parent = next(p for p in parents if p.info.run_id == victim.data.tags["mlflow.parentRunId"])
    assert old_parent.info.status == "KILLED" and old_parent.data.tags["outcome"] == "orphaned"  # reaped
    done = finished_once_each(tmp_path, "fk", 3)
    assert done[first] == first_mlflow_id  # not retrained: the same MLflow run
    resumed = next(r for r in children if r.info.run_id == done[victim.data.tags["run_id"]])
    assert int(resumed.data.tags["resumed_from_step"]) >= 10  # redone from the killed run's checkpoint
    assert len(children) == 4  # 3 finished + the killed one, nothing else
    assert_nothing_running(tmp_path, "fk")


@pytest.mark.slow
def test_worker_killed_mid_run_is_retried_then_failed(root, tmp_path):
    diff = {"grid": {"model.pos_emb": ["abs"]}, "seeds": [0], "scheduler": {"max_retries": 1},
            "ablations": {"killed": {"training.fault": {"kind": "kill", "at_step": 3}}}}
    proc = cli(root, tmp_path, "run", str(suite(tmp_path, root, "wk", diff)), "--workers", "1", "--no-report")
    assert proc.returncode == 1, proc.stderr
    assert "failed runs: killed seed=0" in proc.stderr
    children, parents = child_runs(tmp_path, "wk")
    killed = sorted((r for r in children if r.data.tags["ablation"] == "killed"), key=lambda r: r.data.tags["attempt"])
    assert [(r.data.tags["attempt"], r.info.status, r.data.tags["exit_code"]) for r in killed] == [("0", "FAILED", "-9"), ("1", "FAILED", "-9")]
    assert [r.info.status for r in children if r.data.tags["ablation"] == "none"] == ["FINISHED"]
    assert [p.info.status for p in parents] == ["FAILED"]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_stops_workers_and_marks_runs_killed(root, tmp_path, sig):
    diff = long_runs(300, [0, 1])
    path = suite(tmp_path, root, "intr", diff)
    proc = start(root, tmp_path, str(path), "--workers", "1")
    ckpts = tmp_path / ".harness" / "checkpoints" / "intr"
    checkpoint_appears(tmp_path, "intr")
    workers = children_of(proc.pid)
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == 128 + sig, output(proc)
    assert "interrupted" in output(proc)
    assert workers and not any(alive(w) for w in workers)
    children, parents = child_runs(tmp_path, "intr")
    assert [r.info.status for r in children] == ["KILLED"] and children[0].data.tags["outcome"] == "killed"
    victim = children[0]
    assert [p.info.status for p in parents] == ["KILLED"]
    assert_nothing_running(tmp_path, "intr")
    if sig == signal.SIGINT:  # a rerun completes the suite, the interrupted run resuming from its checkpoint
        again = cli(root, tmp_path, "run", str(path), "--workers", "1", "--no-report")
        assert again.returncode == 0, again.stderr
        done = finished_once_each(tmp_path, "intr", 2)
        rerun = Tracker(f"sqlite:///{tmp_path}/mlflow.db").client.get_run(done[victim.data.tags["run_id"]])
        assert int(rerun.data.tags["resumed_from_step"]) >= 10
        assert not list(ckpts.glob("*/resume.pt"))  # removed once the runs finished


@pytest.mark.slow
def test_concurrent_suites_into_one_store_lose_no_metrics(root, tmp_path):
    """Two suites started together on a new sqlite store, 2 workers each: 2 orchestrators opening the
    store and 4 workers writing at once (the dense one flushes its metrics at every checkpoint)."""
    shapes = {"light": (40, 10, 20), "dense": (40, 1, 10)}  # steps, log_every, eval every
    light = suite(tmp_path, root, "light", {"seeds": [0]})
    dense = suite(tmp_path, root, "dense", {"defaults": {"training": {"log_every": 1, "checkpoint_every": 5},
                                                         "evaluation": {"every": 10}}, "seeds": [0]})
    procs = [start(root, tmp_path, str(light), "--workers", "2"), start(root, tmp_path, str(dense), "--workers", "2")]
    for p in procs:
        assert p.wait(timeout=300) == 0, output(p)
    t = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    points = 0
    for name, (steps, log_every, every) in shapes.items():
        children, _ = child_runs(tmp_path, name)
        assert len(children) == 2 and all(r.info.status == "FINISHED" for r in children)
        for r in children:
            timing = {k for k in r.data.metrics if k.startswith("throughput/")}  # logged once at the end, wall-clock
            assert timing == {"throughput/examples_per_s", "throughput/step_seconds", "throughput/tokens_per_s"}
            assert len(r.data.metrics) - len(timing) == 19  # 16 + items/exact/len_* of the 3 test lengths
            for key in set(r.data.metrics) - timing:
                got = sorted(m.step for m in t.client.get_metric_history(r.info.run_id, key))
                assert got == expected_steps(key, steps, log_every, every), (name, key)
                points += len(got)
    assert points == 2 * (4 * 5 + 2 + 13 * 2) + 2 * (4 * 40 + 2 + 13 * 4)  # 13 evaluated metrics: 10 + items/exact/len_* of 3 lengths


@pytest.mark.slow
def test_retried_run_resumes_from_its_checkpoint_bit_identically(root, tmp_path):
    diff = {"grid": {"model.pos_emb": ["abs"]}, "seeds": [0], "scheduler": {"max_retries": 1},
            "defaults": {"training": {"checkpoint_every": 10}},
            "ablations": {"faulty": {"training.fault": {"kind": "kill", "at_step": 25, "attempts": [0]}}}}
    proc = cli(root, tmp_path, "run", str(suite(tmp_path, root, "ck", diff)), "--workers", "1", "--no-report")
    assert proc.returncode == 0, proc.stderr
    assert "retrying faulty seed=0 (attempt 2)" in proc.stderr and "resuming faulty seed=0 from its last checkpoint" in proc.stderr
    assert "2/2 running 0  failed 0" in proc.stderr  # the bar's counts follow the ends, not the last tick
    children, _ = child_runs(tmp_path, "ck")
    clean = next(r for r in children if r.data.tags["ablation"] == "none")
    first, second = sorted((r for r in children if r.data.tags["ablation"] == "faulty"), key=lambda r: r.data.tags["attempt"])
    assert (first.info.status, first.data.tags["exit_code"], second.info.status) == ("FAILED", "-9", "FINISHED")
    assert second.data.tags["resumed_from_step"] == "20" and "resumed_from_step" not in clean.data.tags
    t = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    def timed(metrics):  # wall-clock metrics: they differ between any two runs
        return {k for k in metrics if k == "time/train_seconds" or k.startswith("throughput/")}

    keys = set(clean.data.metrics) - timed(clean.data.metrics)
    assert keys == set(second.data.metrics) - timed(second.data.metrics) and len(keys) == 18  # with items/exact/len_*
    for key in keys:  # the whole history, the copied part (steps <= 20) and the resumed part, equal exactly
        hist = [[(m.step, m.value) for m in t.client.get_metric_history(r.info.run_id, key)] for r in (clean, second)]
        assert sorted(hist[0]) == sorted(hist[1]), key
    assert not (tmp_path / ".harness" / "checkpoints" / "ck").exists() or not any((tmp_path / ".harness" / "checkpoints" / "ck").iterdir())


@pytest.mark.slow
def test_suite_locked_by_a_live_orchestrator_is_refused(root, tmp_path):
    Tracker(f"sqlite:///{tmp_path}/mlflow.db").setup()  # an existing store (a new one logs its creation)
    with SuiteLock(tmp_path / ".harness" / "locks" / "smoke.lock", "smoke"):
        proc = cli(root, tmp_path, "run", str(root / "suites" / "smoke.yaml"), "--no-report")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: suite smoke is already being run by pid {os.getpid()}")
    assert Tracker(f"sqlite:///{tmp_path}/mlflow.db").client.get_experiment_by_name("smoke") is None  # nothing started
