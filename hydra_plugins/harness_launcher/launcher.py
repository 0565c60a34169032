"""A Hydra launcher that runs a multirun's jobs on the harness's scheduler (`hydra/launcher=harness`):

    python app.py -m lr=1e-3,1e-2 seed=0,1 hydra/launcher=harness hydra.launcher.workers=2

- each job runs in a process of its own on a pool slot (harness.backends.Pool, the local backend): with
  GPUs, `slots_per_gpu` slots per visible GPU, the job pinned with CUDA_VISIBLE_DEVICES (Hydra's own
  launchers put every job on GPU 0); without, one single-threaded CPU slot per worker;
- one MLflow child run per job under a parent run per invocation (harness.jobs.TrackedJobs), the job's
  overrides as params, its return value (when a number) as the metric `return_value`;
- a failed job is retried up to `max_retries` times; a job whose identity (its overrides and its composed
  config) already FINISHED in the store is not run again: its stored return value is returned instead, so
  a multirun killed half-way and started again runs only the rest;
- Hydra's own outputs (job dirs, `.hydra/`, logs) are where Hydra puts them: the job process runs Hydra's
  `run_job` itself.

The multirun holds the harness's lock on its experiment while it runs (a second one exits with an error),
and runs left RUNNING by a killed multirun are marked KILLED when the next one starts.  This module imports
only Hydra: Hydra imports every plugin module whenever any app starts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class HarnessLauncher(Launcher):
    def __init__(self, workers: Optional[int] = None, slots_per_gpu: int = 1, max_retries: int = 0,
                 tracking_uri: Optional[str] = None, experiment: Optional[str] = None) -> None:
        self.workers, self.slots_per_gpu, self.max_retries = workers, slots_per_gpu, max_retries
        self.tracking_uri, self.experiment = tracking_uri, experiment
        self.config: Optional[DictConfig] = None
        self.task_function: Optional[TaskFunction] = None
        self.hydra_context: Optional[HydraContext] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.task_function, self.hydra_context = config, task_function, hydra_context

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from hydra_plugins.harness_launcher import _impl  # the harness (torch-free, but mlflow): only when launching

        return _impl.launch(self, job_overrides, initial_job_idx)

    def options(self) -> dict[str, Any]:
        return {"workers": self.workers, "slots_per_gpu": self.slots_per_gpu, "max_retries": self.max_retries}
