"""Local scheduler: a pool of device slots, one subprocess per run.

With CUDA: `slots_per_gpu` slots on each visible GPU, a run pinned by CUDA_VISIBLE_DEVICES.
Without: N CPU slots (default: the number of cores), each worker limited to one thread.

Workers run in their own session (Ctrl-C reaches the orchestrator only; it stops them itself) and are
told the orchestrator's pid (HARNESS_PARENT_PID) so that `harness.worker` dies with it."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

PR_SET_PDEATHSIG = 1
PARENT_PID_ENV = "HARNESS_PARENT_PID"  # the pool's pid, for harness.worker.die_with_parent


def set_parent_death_signal(sig: int) -> None:
    """Have the kernel send `sig` to this process when its parent dies (Linux prctl PR_SET_PDEATHSIG;
    elsewhere a no-op).  Used by workers (SIGTERM when the orchestrator dies) and by the Ray task's
    subprocess (SIGKILL when the task's process dies)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


@dataclass(frozen=True)
class Slot:
    index: int
    gpu: int | str | None = None  # a CUDA device id or UUID, or a comma-separated list of them (Ray)

    def env(self) -> dict[str, str]:
        env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HARNESS_THREADS": "1"}
        env["CUDA_VISIBLE_DEVICES"] = "" if self.gpu is None else str(self.gpu)
        return env


def visible_gpus() -> list[int]:
    """Device ids to hand to workers in CUDA_VISIBLE_DEVICES: the parent's own CUDA_VISIBLE_DEVICES
    entries when it is set (physical ids such as "2,3" stay 2 and 3; UUID entries are kept as
    strings), else 0..n-1.  HARNESS_FAKE_GPUS=N (tests only) replaces the CUDA device count."""
    fake = os.environ.get("HARNESS_FAKE_GPUS")
    if fake is not None:
        count = int(fake)
    else:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return list(range(count))
    ids = [x.strip() for x in listed.split(",") if x.strip()]
    return [int(x) if x.isdigit() else x for x in ids][:count]  # type: ignore[misc]


def make_slots(workers: int | None, slots_per_gpu: int, gpus: Sequence[int]) -> list[Slot]:
    """GPU slots if there are GPUs (capped at `workers` when given), else `workers` CPU slots."""
    if gpus:
        slots = [Slot(i, g) for i, (g, _) in enumerate((g, k) for g in gpus for k in range(slots_per_gpu))]
        return slots[:workers] if workers else slots
    return [Slot(i) for i in range(workers or os.cpu_count() or 1)]


@dataclass
class Job:
    key: str
    argv: list[str]
    log_path: Path
    attempt: int = 0


@dataclass
class Running:
    job: Job
    slot: Slot
    proc: subprocess.Popen
    started: float


class LocalPool:
    """Runs jobs over slots.  `on_start(job, slot)` is called before launch; `on_end(job, rc)` after."""

    def __init__(self, slots: list[Slot], poll_s: float = 0.05) -> None:
        self.slots = slots
        self.poll_s = poll_s
        self.running: dict[int, Running] = {}
        self.interrupted: list[Job] = []  # the jobs stopped when the last `run` was interrupted

    def run(
        self,
        jobs: Sequence[Job],
        on_start: Callable[[Job, Slot], list[str]],
        on_end: Callable[[Job, int], None],
        on_tick: Callable[[int], None] = lambda n_running: None,
    ) -> None:
        pending = deque(jobs)
        self.interrupted: list[Job] = []
        try:
            while pending or self.running:
                for slot in self.slots:
                    if slot.index in self.running or not pending:
                        continue
                    job = pending.popleft()
                    extra = on_start(job, slot)
                    job.log_path.parent.mkdir(parents=True, exist_ok=True)
                    with open(job.log_path, "ab") as log:
                        proc = subprocess.Popen(
                            job.argv + extra,
                            env={**os.environ, **slot.env(), PARENT_PID_ENV: str(os.getpid())},
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,  # Ctrl-C reaches the parent only; it stops workers itself
                        )
                    self.running[slot.index] = Running(job, slot, proc, time.monotonic())
                on_tick(len(self.running))
                time.sleep(self.poll_s)
                for idx, r in list(self.running.items()):
                    rc = r.proc.poll()
                    if rc is not None:
                        del self.running[idx]
                        on_end(r.job, rc)
        except BaseException:  # Ctrl-C or a bug in a callback: never leave workers behind
            self.interrupted = self.stop_all()
            raise

    def close(self) -> None:
        """Nothing to release: each run() leaves no worker behind (RayPool shuts its cluster down here)."""

    def stop_all(self, grace_s: float = 5.0) -> list[Job]:
        """Terminate every running worker (SIGTERM, then SIGKILL); returns their jobs."""
        stopped = [r.job for r in self.running.values()]
        for r in self.running.values():
            _signal_group(r.proc, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for r in self.running.values():
            try:
                r.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(r.proc, signal.SIGKILL)
                r.proc.wait()
        self.running.clear()
        return stopped


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
