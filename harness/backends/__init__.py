"""Execution backends: where a suite's runs execute.

`local` (harness.sched.LocalPool): one subprocess per run on this machine's device slots.
`ray` (harness.backends.ray_pool.RayPool): one Ray task per run on a local or existing Ray cluster.
Both have the same interface, `run(jobs, on_start, on_end, on_tick)` (callable again, e.g. for a retry
round), `stop_all()`, `interrupted`, and `close()` once the caller is done with the pool;
ray is an optional dependency (`make install-scale`) imported only when that backend is chosen."""

from __future__ import annotations

import importlib.util
import os
import socket
from typing import Callable, Protocol, Sequence

from harness.sched import Job, LocalPool, Slot
from harness.spec.models import SchedulerSpec

BACKENDS = ("local", "ray")


class Pool(Protocol):
    interrupted: list[Job]

    def run(
        self,
        jobs: Sequence[Job],
        on_start: Callable[[Job, Slot], list[str]],
        on_end: Callable[[Job, int], None],
        on_tick: Callable[[int], None] = ...,
    ) -> None: ...

    def stop_all(self, grace_s: float = 5.0) -> list[Job]: ...

    def close(self) -> None: ...


class BackendUnavailable(RuntimeError):
    """The chosen backend cannot run: its package is missing (str() names the install command) or its
    cluster is unreachable.  `key`: the scheduler setting at fault."""

    def __init__(self, message: str, key: str = "scheduler.backend") -> None:
        super().__init__(message)
        self.key = key


def ray_address(scheduler: SchedulerSpec) -> str | None:
    """The Ray cluster to use: `scheduler.ray_address`, else $RAY_ADDRESS, else None (start a local one)."""
    return scheduler.ray_address or os.environ.get("RAY_ADDRESS") or None


def probe_ray_address(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on an unreachable `host:port` or `ray://host:port` (ray.init would retry for minutes).
    'auto' and addresses without a port are left to Ray."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise BackendUnavailable(f"cannot reach the Ray cluster at {address}: {e}", "scheduler.ray_address") from None


def check_backend(backend: str, address: str | None = None) -> None:
    """Raise BackendUnavailable when `backend` cannot run here (without importing it)."""
    if backend not in BACKENDS:
        raise BackendUnavailable(f"unknown backend '{backend}' (known: {', '.join(BACKENDS)})")
    if backend == "ray" and importlib.util.find_spec("ray") is None:
        raise BackendUnavailable("backend 'ray' needs the ray package: run `make install-scale`")
    if backend == "ray" and address:
        probe_ray_address(address)


def make_pool(backend: str, slots: list[Slot], scheduler: SchedulerSpec, workers: int | None = None) -> Pool:
    """The pool of `backend`.  `slots` (from the visible GPUs) drive the local pool; Ray does its own
    placement from `scheduler.slots_per_gpu` and the cluster's resources.  The Ray address is
    `scheduler.ray_address`, else $RAY_ADDRESS, else a new local cluster of `workers` CPUs."""
    address = ray_address(scheduler)
    check_backend(backend, address if backend == "ray" else None)
    if backend == "ray":
        from harness.backends.ray_pool import RayPool

        return RayPool(workers=workers or scheduler.workers, slots_per_gpu=scheduler.slots_per_gpu, address=address)
    return LocalPool(slots)
