"""Whether a backend can run here, checked before anything is written: its package, its cluster's address."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket

from harness.spec.models import BACKENDS, SchedulerSpec


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
    if backend == "slurm" and importlib.util.find_spec("submitit") is None:
        raise BackendUnavailable("backend 'slurm' needs the submitit package: run `make install-scale`")
    if backend == "slurm" and shutil.which("sbatch") is None:
        raise BackendUnavailable("backend 'slurm' needs the SLURM client (sbatch, squeue, scancel) on PATH")
