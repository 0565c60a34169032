"""Execution backends: where a suite's runs execute, behind one pool loop (harness.backends.base.Pool).

`local` (harness.backends.local.LocalBackend): this machine's device slots, every run forked from one
warm worker process.  `ray` (harness.backends.ray_backend.RayBackend): a warm worker actor per slot on
a local or existing Ray cluster; ray is an optional dependency (`make install-scale`) imported only when
that backend is chosen.  `slurm` (harness.backends.slurm.SlurmBackend): a SLURM job per run through
submitit (`make install-scale`; sbatch on PATH).  A backend implements open / launch / wait / stop / close (`Backend`); adding one
is a module with that class, its name in `harness.spec.models.BACKENDS` and a branch in `make_pool`."""

from __future__ import annotations

from pathlib import Path

from harness.backends.base import Backend, Job, Pool, Slot, make_slots, visible_gpus
from harness.backends.check import BackendUnavailable, check_backend, probe_ray_address, ray_address
from harness.backends.local import LocalBackend
from harness.backends.warm import WarmWorkers
from harness.spec.models import BACKENDS, SchedulerSpec

__all__ = ["BACKENDS", "Backend", "BackendUnavailable", "Job", "Pool", "Slot", "WarmWorkers", "check_backend",
           "make_pool", "make_slots", "probe_ray_address", "ray_address", "visible_gpus"]


def make_pool(scheduler: SchedulerSpec, workers: int | None = None, warm: WarmWorkers | None = None,
              log_dir: Path | None = None) -> Pool:
    """The pool of the suite's backend.  Local: `workers` (else `scheduler.workers`, else the cores) CPU
    slots or `slots_per_gpu` per visible GPU, served by `warm` (a warm process already started) or a new
    one logging to `log_dir`/warm.log.  Ray: placement from `scheduler.slots_per_gpu` and the cluster's
    resources; the address is `scheduler.ray_address`, else $RAY_ADDRESS, else a new local cluster of
    `workers` CPUs.  SLURM: at most `workers` jobs in flight, sbatch options from `scheduler.slurm`, submitit's
    files under `log_dir`/slurm."""
    address = ray_address(scheduler)
    check_backend(scheduler.backend, address if scheduler.backend == "ray" else None)
    n = workers or scheduler.workers
    if scheduler.backend == "ray":
        from harness.backends.ray_backend import RayBackend

        if warm is not None:
            warm.close()  # started early for a local run: not needed
        return Pool(RayBackend(workers=n, slots_per_gpu=scheduler.slots_per_gpu, address=address), tick_s=1.0)
    if scheduler.backend == "slurm":
        from harness.backends.slurm import SlurmBackend

        if warm is not None:
            warm.close()
        folder = (log_dir or Path(".harness") / "logs") / "slurm"
        return Pool(SlurmBackend(scheduler.slurm, folder, n, scheduler.slots_per_gpu, f"harness-{folder.parent.name}"), tick_s=2.0)
    slots = make_slots(n, scheduler.slots_per_gpu, visible_gpus())
    return Pool(LocalBackend(slots, warm, (log_dir or Path(".harness") / "logs") / "warm.log"), tick_s=0.5)
