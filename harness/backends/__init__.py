"""Execution backends: where a suite's runs execute, behind one pool loop (harness.backends.base.Pool).

`local` (harness.backends.local.LocalBackend): this machine's device slots, every run forked from one
warm worker process.  `ray` (harness.backends.ray_backend.RayBackend): a warm worker actor per slot on
a local or existing Ray cluster; ray is an optional dependency (`make install-scale`) imported only when
that backend is chosen.  A backend implements open / launch / wait / stop / close (`Backend`); adding one
is a module with that class, its name in `harness.spec.models.BACKENDS` and a branch in `make_pool`."""

from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path

from harness.backends.base import Backend, Job, Pool, Slot, make_slots, visible_gpus
from harness.backends.local import LocalBackend
from harness.backends.warm import WarmWorkers
from harness.spec.models import BACKENDS, SchedulerSpec

__all__ = ["BACKENDS", "Backend", "BackendUnavailable", "Job", "Pool", "Slot", "WarmWorkers", "check_backend",
           "make_pool", "make_slots", "probe_ray_address", "ray_address", "visible_gpus"]


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


def make_pool(scheduler: SchedulerSpec, workers: int | None = None, warm: WarmWorkers | None = None,
              log_dir: Path | None = None) -> Pool:
    """The pool of the suite's backend.  Local: `workers` (else `scheduler.workers`, else the cores) CPU
    slots or `slots_per_gpu` per visible GPU, served by `warm` (a warm process already started) or a new
    one logging to `log_dir`/warm.log.  Ray: placement from `scheduler.slots_per_gpu` and the cluster's
    resources; the address is `scheduler.ray_address`, else $RAY_ADDRESS, else a new local cluster of
    `workers` CPUs."""
    address = ray_address(scheduler)
    check_backend(scheduler.backend, address if scheduler.backend == "ray" else None)
    n = workers or scheduler.workers
    if scheduler.backend == "ray":
        from harness.backends.ray_backend import RayBackend

        if warm is not None:
            warm.close()  # started early for a local run: not needed
        return Pool(RayBackend(workers=n, slots_per_gpu=scheduler.slots_per_gpu, address=address), tick_s=1.0)
    slots = make_slots(n, scheduler.slots_per_gpu, visible_gpus())
    return Pool(LocalBackend(slots, warm, (log_dir or Path(".harness") / "logs") / "warm.log"), tick_s=0.5)
