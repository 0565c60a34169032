"""What every backend shares: device slots, jobs, the one pool loop, and process-group signalling.

A backend only knows how to start a job on a slot, report the jobs that ended, stop the ones in flight
and release what it holds (`Backend`); `Pool` drives any backend through a list of jobs: it fills free
slots (calling `on_start`, which may add per-attempt arguments), reports each end (`on_end`, with the
worker's exit code: negative = killed by that signal), and on any exception (Ctrl-C, a bug in a
callback) stops every job in flight before re-raising, so no worker outlives the loop.  A pool can be
run again (a retry round, a tuning wave) until it is closed.

Slots: with CUDA, `slots_per_gpu` slots on each visible GPU, a run pinned by CUDA_VISIBLE_DEVICES;
without, N CPU slots (default: the number of cores).  Every worker runs single-threaded."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

PR_SET_PDEATHSIG = 1
PARENT_PID_ENV = "HARNESS_PARENT_PID"  # the launching process's pid, for harness.worker.die_with_parent
NODE_ENV = "HARNESS_NODE"  # where a worker runs, as its backend names it (tag `node`)
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "HARNESS_THREADS": "1"}
FORWARDED_ENV_PREFIXES = ("HARNESS_", "MLFLOW_")  # the driver's settings a worker on another node gets too
FORWARDED_ENV = ("PGPASSFILE",)  # a path (each node has the file); a password itself is never shipped


def forwarded_env() -> dict[str, str]:
    """The driver's harness / MLflow settings (tracking deadline, database URL, HTTP retries), for workers
    that a cluster starts with its own environment (Ray actors, SLURM jobs)."""
    return {k: v for k, v in os.environ.items()
            if (k.startswith(FORWARDED_ENV_PREFIXES) or k in FORWARDED_ENV) and k not in (PARENT_PID_ENV, NODE_ENV)}


def ship_files(argv: Sequence[str]) -> dict[int, tuple[str, bytes]]:
    """The arguments of a worker command that name files on the driver (the RunSpec JSON, a trial's ref):
    argv index -> (file name, content), for a backend whose workers run on other machines."""
    return {i: (Path(a).name, Path(a).read_bytes()) for i, a in enumerate(argv) if i > 0 and os.path.isfile(a)}  # isfile: False for any non-path


def unship(argv: Sequence[str], files: dict[int, tuple[str, bytes]], folder: Path, own_python: bool) -> list[str]:
    """`argv` with the shipped files written to `folder` and their arguments pointing there; `own_python`:
    argv[0] is the driver's interpreter, replaced by this node's."""
    out = list(argv)
    if own_python:
        out[0] = sys.executable
    for i, (name, data) in files.items():
        (folder / name).write_bytes(data)
        out[i] = str(folder / name)
    return out


def set_parent_death_signal(sig: int) -> None:
    """Have the kernel send `sig` to this process when its parent dies (Linux prctl PR_SET_PDEATHSIG;
    elsewhere a no-op).  Used by every process a pool starts: warm workers, runs, Ray's subprocesses."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to a process group; False if it is gone."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False


@dataclass(frozen=True)
class Slot:
    index: int
    gpu: int | str | None = None  # a CUDA device id or UUID, or a comma-separated list of them (Ray)

    def env(self) -> dict[str, str]:
        """The environment a worker on this slot runs with: one thread, this slot's GPU(s) only."""
        return {**SINGLE_THREAD_ENV, "CUDA_VISIBLE_DEVICES": "" if self.gpu is None else str(self.gpu)}


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


def make_slots(workers: int | None, slots_per_gpu: int, gpus: Sequence[int | str]) -> list[Slot]:
    """GPU slots if there are GPUs (capped at `workers` when given), else `workers` CPU slots."""
    if gpus:
        slots = [Slot(i, g) for i, g in enumerate(g for g in gpus for _ in range(slots_per_gpu))]
        return slots[:workers] if workers else slots
    return [Slot(i) for i in range(workers or os.cpu_count() or 1)]


@dataclass
class Job:
    """One attempt's command line (`argv`; the pool adds per-attempt options) and its log file.  `after`:
    keys of jobs that must succeed first (a stage run's source); `group`: what a JobQueue cap counts."""

    key: str
    argv: list[str]
    log_path: Path
    attempt: int = 0
    after: tuple[str, ...] = ()
    group: str = ""


class JobQueue:
    """Jobs in the order they may start.  A job is ready when every key it comes `after` has succeeded
    (keys the queue never held count as done: e.g. runs already finished in the store) and its group has
    fewer than `caps[group]` jobs running.  `fail(key)` drops the jobs that wait on it, transitively, and
    returns them; `push` queues a job (again: a retry goes to the back)."""

    def __init__(self, jobs: Sequence[Job] = (), caps: dict[str, int] | None = None) -> None:
        self.pending: list[Job] = []
        self.keys: set[str] = set()  # every key ever queued
        self.succeeded: set[str] = set()
        self.caps = dict(caps or {})
        for job in jobs:
            self.push(job)

    def push(self, job: Job) -> None:
        self.pending.append(job)
        self.keys.add(job.key)

    def __bool__(self) -> bool:
        return bool(self.pending)

    def next(self, running: Sequence[Job]) -> Job | None:
        count = Counter(j.group for j in running)
        for i, job in enumerate(self.pending):
            deps_done = all(k in self.succeeded or k not in self.keys for k in job.after)
            if deps_done and count[job.group] < self.caps.get(job.group, sys.maxsize):
                return self.pending.pop(i)
        return None

    def succeed(self, key: str) -> None:
        self.succeeded.add(key)

    def fail(self, key: str) -> list[Job]:
        dropped, frontier = [], {key}
        while frontier:
            waiting = [j for j in self.pending if frontier & set(j.after)]
            self.pending = [j for j in self.pending if j not in waiting]
            dropped += waiting
            frontier = {j.key for j in waiting}
        return dropped


class Backend(Protocol):
    """Where jobs execute.  `open()` connects (a cluster) or starts (warm workers) and returns the slots."""

    def open(self) -> list[Slot]: ...

    def launch(self, job: Job, slot: Slot, argv: list[str]) -> None:
        """Start `argv` (the job's command plus its per-attempt options) on `slot`."""
        ...

    def wait(self, timeout: float) -> list[tuple[Job, int]]:
        """The jobs that ended within `timeout` seconds (at least one, unless it timed out), with exit codes."""
        ...

    def stop(self, grace_s: float) -> list[Job]:
        """Stop every job in flight (SIGTERM to its process group, SIGKILL after `grace_s`); returns them."""
        ...

    def close(self) -> None: ...


OnStart = Callable[[Job, Slot], list[str]]
OnEnd = Callable[[Job, int], None]
OnTick = Callable[[int], None]


class Pool:
    """The one loop over any backend (module docstring).  `interrupted`: the jobs stopped when the last
    `run` was cut short.  `slots` are known once the first `run` opened the backend."""

    def __init__(self, backend: Backend, tick_s: float = 0.5, grace_s: float = 5.0) -> None:
        self.backend, self.tick_s, self.grace_s = backend, tick_s, grace_s
        self.slots: list[Slot] = []
        self.interrupted: list[Job] = []

    def open(self) -> list[Slot]:
        if not self.slots:
            self.slots = self.backend.open()
        return self.slots

    def run(self, jobs: Sequence[Job] | JobQueue, on_start: OnStart, on_end: OnEnd, on_tick: OnTick = lambda n_running: None) -> None:
        """Run every job (a list, in order; or a JobQueue, which `on_end` may add retries to)."""
        queue = jobs if isinstance(jobs, JobQueue) else JobQueue(jobs)
        busy: dict[int, Job] = {}  # slot index -> its job
        self.interrupted = []
        try:
            slots = self.open()
            while queue or busy:
                for slot in slots:
                    if slot.index in busy:
                        continue
                    job = queue.next(list(busy.values()))
                    if job is None:
                        break
                    argv = job.argv + on_start(job, slot)
                    busy[slot.index] = job
                    self.backend.launch(job, slot, argv)
                if queue and not busy:
                    raise RuntimeError(f"{len(queue.pending)} jobs wait on jobs that cannot succeed: {[j.key for j in queue.pending]}")
                on_tick(len(busy))
                for job, rc in self.backend.wait(self.tick_s):
                    busy.pop(next(i for i, j in busy.items() if j is job))
                    on_end(job, rc)
        except BaseException:  # Ctrl-C or a bug in a callback: never leave workers behind
            self.interrupted = self.backend.stop(self.grace_s)
            raise

    def close(self) -> None:
        """Release the backend (warm workers, a cluster this pool started)."""
        self.backend.close()
        self.slots = []

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def terminate_groups(pgids: Sequence[int], grace_s: float, ended: Callable[[float], Sequence[int]]) -> None:
    """SIGTERM each process group, then SIGKILL those whose leader has not ended after `grace_s`.
    `ended(timeout)` waits up to `timeout` seconds and returns the leaders that ended meanwhile.  A SIGCONT
    follows the SIGTERM (as a shell's `kill` does for a stopped job): a paused run handles it at once."""
    left = {g for g in pgids if signal_group(g, signal.SIGTERM)}
    for g in left:
        signal_group(g, signal.SIGCONT)
    deadline = time.monotonic() + grace_s
    while left and (remaining := deadline - time.monotonic()) > 0:
        left -= set(ended(min(0.1, remaining)))
    for g in left:
        signal_group(g, signal.SIGKILL)
