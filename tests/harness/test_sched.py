"""Slot assignment (with a fake GPU list) and the local pool on real processes forked from its warm worker."""

import sys
from pathlib import Path

import pytest

from harness.backends import Job, Pool, Slot, make_slots
from harness.backends.local import LocalBackend


def local_pool(slots, tmp_path: Path) -> Pool:
    return Pool(LocalBackend(slots, log_path=tmp_path / "warm.log"), tick_s=0.01)


def test_cpu_slots_default_to_cores_and_single_thread(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 3)
    slots = make_slots(None, 1, [])
    assert [s.index for s in slots] == [0, 1, 2] and all(s.gpu is None for s in slots)
    env = slots[0].env()
    assert env["OMP_NUM_THREADS"] == "1" and env["CUDA_VISIBLE_DEVICES"] == ""
    assert len(make_slots(2, 1, [])) == 2


def test_gpu_slots_pack_runs_per_gpu():
    slots = make_slots(None, 3, [0, 1])
    assert [s.gpu for s in slots] == [0, 0, 0, 1, 1, 1]
    assert [s.index for s in slots] == list(range(6))
    assert slots[4].env()["CUDA_VISIBLE_DEVICES"] == "1"
    assert [s.gpu for s in make_slots(4, 3, [0, 1])] == [0, 0, 0, 1]


def test_pool_runs_every_job_once_with_its_slot_env(tmp_path: Path):
    slots = [Slot(0, None), Slot(1, 7)]
    out = tmp_path / "out"
    out.mkdir()
    code = "import os,sys; open(sys.argv[1],'w').write(os.environ['CUDA_VISIBLE_DEVICES'] + ' ' + os.environ['OMP_NUM_THREADS'])"
    jobs = [Job(f"j{i}", [sys.executable, "-c", code, str(out / f"j{i}")], tmp_path / f"j{i}.log") for i in range(5)]
    started, ended = [], []
    with local_pool(slots, tmp_path) as pool:
        pool.run(jobs, lambda j, s: started.append((j.key, s.index)) or [], lambda j, rc: ended.append((j.key, rc)))
    assert sorted(k for k, _ in ended) == [f"j{i}" for i in range(5)] and all(rc == 0 for _, rc in ended)
    assert {(out / f"j{i}").read_text() for i in range(5)} <= {" 1", "7 1"}
    assert {s for _, s in started} == {0, 1}


def test_pool_reports_nonzero_exit(tmp_path: Path):
    jobs = [Job("bad", [sys.executable, "-c", "import sys; sys.exit(4)"], tmp_path / "bad.log")]
    ended = []
    with local_pool([Slot(0)], tmp_path) as pool:
        pool.run(jobs, lambda j, s: [], lambda j, rc: ended.append(rc))
    assert ended == [4]


# ---------------------------------------------------------------- visible GPUs (HARNESS_FAKE_GPUS: a fake device count)
def test_fake_gpus_pack_slots_per_gpu_with_their_device(monkeypatch):
    from harness.backends import visible_gpus

    monkeypatch.setenv("HARNESS_FAKE_GPUS", "2")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    gpus = visible_gpus()
    assert gpus == [0, 1]
    slots = make_slots(None, 3, gpus)
    assert len(slots) == 6 and [s.index for s in slots] == list(range(6))
    assert [s.env()["CUDA_VISIBLE_DEVICES"] for s in slots] == ["0", "0", "0", "1", "1", "1"]
    assert all(s.env()["OMP_NUM_THREADS"] == "1" for s in slots)
    capped = make_slots(4, 3, gpus)  # `workers` caps the slots: GPU 1 gets one run
    assert [s.env()["CUDA_VISIBLE_DEVICES"] for s in capped] == ["0", "0", "0", "1"]


def test_visible_gpus_hands_on_the_parents_physical_ids(monkeypatch):
    from harness.backends import visible_gpus

    monkeypatch.setenv("HARNESS_FAKE_GPUS", "2")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    gpus = visible_gpus()
    assert gpus == [2, 3]
    assert [s.env()["CUDA_VISIBLE_DEVICES"] for s in make_slots(None, 2, gpus)] == ["2", "2", "3", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-5f1c, 7")  # UUIDs are passed through as written
    assert visible_gpus() == ["GPU-5f1c", 7]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3,5")  # more ids listed than devices the runtime has
    assert visible_gpus() == [2, 3]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # GPUs hidden: CPU slots
    assert visible_gpus() == []
    assert all(s.gpu is None for s in make_slots(2, 3, visible_gpus()))


# ---------------------------------------------------------------- the warm process's shutdown
SLOW_TO_STOP = """
import signal, sys, time
from pathlib import Path
def stop(signum, frame):
    time.sleep(1.0)  # e.g. closing its MLflow run
    Path(sys.argv[1]).write_text("stopped")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
Path(sys.argv[2]).write_text("ready")
while True:
    time.sleep(0.05)
"""


def test_warm_process_outlives_its_jobs_when_eof_and_sigterm_race(tmp_path: Path):
    """The launcher dying closes the warm process's stdin and (PR_SET_PDEATHSIG) sends it SIGTERM, in either
    order.  SIGTERM landing while it already stops its jobs after the EOF must not end it before them: a job
    that outlived it could still be writing to the store when the launcher's rerun opens it."""
    import os
    import signal
    import time

    from harness.backends.warm import EXIT_TERMINATED, WarmWorkers

    stopped, ready = tmp_path / "stopped", tmp_path / "ready"
    warm = WarmWorkers(tmp_path / "warm.log").start()
    warm.launch("j", [sys.executable, "-c", SLOW_TO_STOP, str(stopped), str(ready)], tmp_path / "j.log", {})
    deadline = time.monotonic() + 60
    while not (warm.pids and ready.exists()) and time.monotonic() < deadline:
        warm.events(0.05)
    job = warm.pids["j"]
    warm.proc.stdin.close()  # EOF: it SIGTERMs the job and waits for it (1 s) ...
    time.sleep(0.3)
    warm.proc.send_signal(signal.SIGTERM)  # ... and is told to stop meanwhile
    assert warm.proc.wait(timeout=30) == EXIT_TERMINATED
    assert stopped.read_text() == "stopped"  # the job finished stopping before its warm process exited
    assert not os.path.exists(f"/proc/{job}")  # and was reaped
    warm.proc.stdout.close()


LAUNCHER = """
import sys, time
from harness.backends.warm import WarmWorkers
warm = WarmWorkers.temporary_log().start()
while not warm.ready:
    warm.running.add("-")  # events() reads only while a job is in flight
    warm.events(0.1)
print(warm.log_path, warm.proc.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("written", [False, True], ids=["empty", "written"])
def test_a_sigkilled_launchers_empty_temp_warm_log_is_removed(root: Path, written: bool):
    """A launcher SIGKILLed never closes its warm process: the warm process (PR_SET_PDEATHSIG) removes its own
    temp log on the way out while it is empty, and keeps one something was written to."""
    import os
    import signal
    import subprocess
    import time

    env = {**os.environ, "PYTHONPATH": str(root)}
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdout=subprocess.PIPE, text=True, env=env)
    log, pid = launcher.stdout.readline().split()
    log, pid = Path(log), int(pid)
    assert log.exists() and log.stat().st_size == 0
    if written:
        log.write_text("a traceback worth keeping\n")
    launcher.send_signal(signal.SIGKILL)
    launcher.wait(timeout=30)

    def alive() -> bool:  # a zombie (no reaper in a container's pid 1) has exited
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 30
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive()  # the warm process died with its launcher
    assert log.exists() == written
    log.unlink(missing_ok=True)


def test_a_failed_runs_error_line_is_read_from_the_tail_of_its_log(tmp_path):
    from harness.orchestrate import TAIL_BYTES, last_error

    log = tmp_path / "run.log"
    trace = "Traceback (most recent call last):\n  File \"x.py\", line 1, in f\n    raise ValueError('bad lr')\nValueError: bad lr\n"
    log.write_text("step 1\n" * 2_000_000 + trace + "worker exiting\n")  # ~14 MB: only the last 64 KB are read
    assert last_error(log) == "ValueError: bad lr" and log.stat().st_size > 100 * TAIL_BYTES
    (tmp_path / "plain.log").write_text("killed by the OOM killer\n\n")
    assert last_error(tmp_path / "plain.log") == "killed by the OOM killer" and last_error(tmp_path / "none.log") == ""
