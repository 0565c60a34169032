"""The worker side of tuning: what a worker needs to report a run's evaluations to its Optuna trial.

The driver (harness.tune.study) writes a `TrialRef` as JSON and passes it with `--trial`; the worker's
`ReportToTrial` callback reports the objective at every evaluation and raises `TrialPruned` (a StopRun:
the run ends KILLED with outcome=pruned) when the study's pruner says so."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from harness.spec.tune_models import PrunerSpec
from harness.tags import Outcome
from harness.train.callbacks import StopRun

optuna.logging.set_verbosity(optuna.logging.WARNING)


def open_storage(storage: str) -> Any:
    """A URL (`sqlite:///...`, `postgresql://...`) is an RDB storage (connections checked before use, so a
    database restarted since the last call is reconnected to); a path is a journal file."""
    if "://" in storage:
        return optuna.storages.RDBStorage(storage, engine_kwargs={"pool_pre_ping": True})
    Path(storage).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(storage))


def build_pruner(spec: PrunerSpec) -> optuna.pruners.BasePruner:
    if spec.name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=spec.startup_trials, n_warmup_steps=spec.warmup_steps)
    if spec.name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=spec.min_resource, reduction_factor=spec.reduction_factor)
    return optuna.pruners.NopPruner()


class TrialPruned(StopRun):
    reason = Outcome.PRUNED.value


@dataclass(frozen=True)
class TrialRef:
    """What a worker needs to report to its trial (written as JSON, passed by `--trial`)."""

    storage: str
    study: str
    trial_id: int
    number: int
    objective: str
    last_step: int
    pruner: dict[str, Any]

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self)))
        return path

    @classmethod
    def read(cls, path: Path) -> TrialRef:
        return cls(**json.loads(path.read_text()))


class ReportToTrial:
    """Loop callback: every evaluation's objective goes to the trial; raises TrialPruned when
    the pruner says so (never at the last step: a trial that got there is complete)."""

    def __init__(self, ref: TrialRef) -> None:
        pruner = build_pruner(PrunerSpec.model_validate(ref.pruner))
        study = optuna.load_study(study_name=ref.study, storage=open_storage(ref.storage), pruner=pruner)
        self.trial = optuna.trial.Trial(study, ref.trial_id)
        self.ref = ref

    def on_step(self, step: int, scalars: dict[str, float]) -> None:
        pass

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        if self.ref.objective not in metrics:
            raise KeyError(f"objective '{self.ref.objective}' is not among the evaluation metrics: {sorted(metrics)}")
        self.trial.report(metrics[self.ref.objective], step)
        if step < self.ref.last_step and self.trial.should_prune():
            raise TrialPruned(f"pruned at step {step}")
