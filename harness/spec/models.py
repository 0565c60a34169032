"""Pydantic models of a suite and of one resolved run.  Every model forbids unknown keys."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal, Optional, Union

from pydantic import ConfigDict, Field, SerializeAsAny, field_validator

from harness.registry import REGISTRIES, ComponentConfig
from harness.spec.base import Label, Scalar, Strict  # noqa: F401  (re-exported)
from harness.spec.claim_models import Claims, ClaimSpec  # noqa: F401  (re-exported)
from harness.spec.report_models import FigureSpec, HeatmapSpec, ReportSpec, TableSpec  # noqa: F401  (re-exported)
from harness.spec.tune_models import TuneSpec


# ---------------------------------------------------------------- one run's resolved config
class OptimizerConfig(Strict):
    name: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = Field(0.9, ge=0, description="sgd only")
    schedule: Literal["constant", "cosine", "linear"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="final lr / peak lr for cosine and linear")


class FaultConfig(Strict):
    """Test-only fault injection (the tests of the orchestrator's fault tolerance): at `at_step`,
    raise an exception, make the loss NaN, exit the worker (code 3) or SIGKILL it, on the attempts
    listed in `attempts` (0 = first try; null = every attempt)."""

    kind: Literal["raise", "nan", "exit", "kill"]
    at_step: int = Field(1, ge=1)
    attempts: Optional[list[int]] = Field(None, description="attempts the fault fires on; null = all")


class TrainingConfig(Strict):
    steps: int = Field(1000, ge=1)
    batch_size: int = Field(64, ge=1)
    grad_clip: Optional[float] = Field(1.0, gt=0, description="max global grad norm; null disables")
    log_every: int = Field(25, ge=1, description="steps between logged training metrics")
    checkpoint: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    fault: Optional[FaultConfig] = None
    checkpoint_every: Optional[int] = Field(
        None, ge=1, description="steps between resume checkpoints (a retried or rerun attempt resumes); null = none"
    )


class EvaluationConfig(Strict):
    every: Optional[int] = Field(None, ge=1, description="steps between evaluations; null = only at the end")


COMPONENT_FIELDS = ("task", "model", "method")
# Operational settings left out of the run_id: resuming from a checkpoint is bit-identical to an
# uninterrupted run, so turning checkpoints on for a finished suite retrains nothing.
NOT_HASHED = (("training", "checkpoint_every"),)


class RunConfig(Strict):
    """Everything that determines one run's result.  Its canonical JSON hashes to the run_id."""

    task: SerializeAsAny[ComponentConfig]
    model: SerializeAsAny[ComponentConfig]
    method: SerializeAsAny[ComponentConfig]
    optimizer: OptimizerConfig = OptimizerConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    seed: int = 0

    @field_validator(*COMPONENT_FIELDS, mode="before")
    @classmethod
    def _typed_component(cls, value: Any, info: Any) -> Any:
        """A component given as a dict (e.g. RunSpec JSON read back by a worker) is validated by
        the config class registered under its name.  User input goes through `validate_config`,
        which reports errors with file:line first."""
        if isinstance(value, dict):
            return REGISTRIES[info.field_name].get(str(value.get("name"))).config.model_validate(value)
        return value

    def canonical_json(self) -> str:
        """Sorted-key JSON of the config without NOT_HASHED settings (they never change a result)."""
        data = self.model_dump(mode="json")
        for section, key in NOT_HASHED:
            data[section].pop(key)
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def content_hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]

    def flat(self) -> dict[str, Any]:
        """Flattened `a.b.c -> value` view (for MLflow params and DataFrame columns)."""
        return flatten(self.model_dump(mode="json"))


COMPONENT_KEYS = COMPONENT_FIELDS
CONFIG_KEYS = tuple(RunConfig.model_fields)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


class RunSpec(Strict):
    """One run of a suite: frozen, identified by the hash of its resolved config."""

    run_id: str
    suite: str
    config: RunConfig
    labels: dict[str, Label] = Field(default_factory=dict, description="axis path -> value for this run")
    ablation: str = ""
    tuned: dict[str, Scalar] = Field(default_factory=dict, description="config path -> value set by a tune block")

    @classmethod
    def create(cls, suite: str, config: RunConfig, labels: dict[str, Label], ablation: str = "") -> RunSpec:
        return cls(run_id=config.content_hash(), suite=suite, config=config, labels=labels, ablation=ablation)

    @property
    def name(self) -> str:
        parts = [self.ablation] if self.ablation else []
        parts += [f"{k.split('.')[-1]}={v}" for k, v in self.labels.items() if k != "seed"]
        return " ".join(parts + [f"seed={self.config.seed}"])


# ---------------------------------------------------------------- the suite file
AxisValues = list[Any]


class WhenBranch(Strict):
    """Conditional axes: points matching `if` get `set` applied and are crossed with `grid`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    if_: dict[str, Union[Scalar, list[Scalar]]] = Field(alias="if", min_length=1)
    set: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, AxisValues] = Field(default_factory=dict)


BACKENDS = ("local", "ray")  # harness.backends implements each


class SchedulerSpec(Strict):
    workers: Optional[int] = Field(None, ge=1, description="CPU worker processes; null = number of cores")
    slots_per_gpu: int = Field(1, ge=1)
    max_retries: int = Field(0, ge=0)
    backend: Literal[BACKENDS] = Field("local", description="local warm workers, or a warm worker actor per slot on Ray")
    ray_address: Optional[str] = Field(None, description="address of a running Ray cluster (e.g. 'auto'); null = start a local one")


class SuiteSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    description: str = ""
    include: Optional[str] = None
    defaults: dict[str, Any]
    grid: dict[str, AxisValues] = Field(default_factory=dict)
    zip: dict[str, AxisValues] = Field(default_factory=dict)
    when: list[WhenBranch] = Field(default_factory=list)
    exclude: list[dict[str, Union[Scalar, list[Scalar]]]] = Field(default_factory=list)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    ablations: dict[str, dict[str, Any]] = Field(default_factory=dict)
    claims: Claims = Field(default_factory=list)
    tune: list[TuneSpec] = Field(default_factory=list, description="hyper-parameter searches run before the final runs")
    scheduler: SchedulerSpec = SchedulerSpec()
    report: ReportSpec = ReportSpec()

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("seeds must be unique")
        return v
