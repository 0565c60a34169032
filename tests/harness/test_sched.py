"""Slot assignment (with a fake GPU list) and the local pool on real subprocesses."""

import sys
from pathlib import Path

from harness.sched import Job, LocalPool, Slot, make_slots


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
    LocalPool(slots, poll_s=0.01).run(jobs, lambda j, s: started.append((j.key, s.index)) or [], lambda j, rc: ended.append((j.key, rc)))
    assert sorted(k for k, _ in ended) == [f"j{i}" for i in range(5)] and all(rc == 0 for _, rc in ended)
    assert {(out / f"j{i}").read_text() for i in range(5)} <= {" 1", "7 1"}
    assert {s for _, s in started} == {0, 1}


def test_pool_reports_nonzero_exit(tmp_path: Path):
    jobs = [Job("bad", [sys.executable, "-c", "import sys; sys.exit(4)"], tmp_path / "bad.log")]
    ended = []
    LocalPool([Slot(0)], poll_s=0.01).run(jobs, lambda j, s: [], lambda j, rc: ended.append(rc))
    assert ended == [4]
