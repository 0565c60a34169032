"""`hydra/launcher=harness`: the launcher's options (hydra.launcher.<option>=... on the command line)."""

from dataclasses import dataclass
from typing import Optional

from hydra.core.config_store import ConfigStore


@dataclass
class HarnessLauncherConf:
    _target_: str = "hydra_plugins.harness_launcher.launcher.HarnessLauncher"
    workers: Optional[int] = None  # jobs at once: CPU slots (default: cores), or at most this many GPU slots
    slots_per_gpu: int = 1  # jobs sharing each visible GPU (each pinned with CUDA_VISIBLE_DEVICES)
    max_retries: int = 0  # a failed job (exception, crash, kill) is run again up to this many times
    tracking_uri: Optional[str] = None  # MLflow store (default: sqlite:///./mlflow.db, as `harness run`)
    experiment: Optional[str] = None  # MLflow experiment (default: the app's job name, hydra.job.name)


ConfigStore.instance().store(group="hydra/launcher", name="harness", node=HarnessLauncherConf, provider="harness")
