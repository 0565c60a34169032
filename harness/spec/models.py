"""Pydantic models of a suite and of one resolved run.  Every model forbids unknown keys."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import AfterValidator, ConfigDict, Field, SerializeAsAny, ValidationInfo, field_validator

from harness.registry import REGISTRIES, ComponentConfig
from harness.spec.base import Label, Name, Scalar, Seed, Strict  # noqa: F401  (re-exported)
from harness.spec.claim_models import Claims, ClaimSpec, References, ReferenceSpec  # noqa: F401  (re-exported)
from harness.spec.report_models import FigureSpec, HeatmapSpec, ReportSpec, TableSpec  # noqa: F401  (re-exported)
from harness.spec.tune_models import TuneSpec


# ---------------------------------------------------------------- one run's resolved config
class OptimizerConfig(Strict):
    name: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (0.9, 0.999)
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
    steps: int = Field(1000, ge=0, le=10**9, description="optimizer steps; 0 = evaluate only (e.g. a frozen-feature probe)")
    batch_size: int = Field(64, ge=1, le=2**24)
    grad_clip: Optional[float] = Field(1.0, gt=0, description="max global grad norm; null disables")
    log_every: int = Field(25, ge=1, description="steps between logged training metrics")
    checkpoint: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    fault: Optional[FaultConfig] = None
    checkpoint_every: Optional[int] = Field(
        None, ge=1, description="steps between resume checkpoints (a retried or rerun attempt resumes); null = none"
    )
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="bf16 / fp16: the loss under torch.autocast (fp16 with a dynamic grad scaler); weights, "
        "optimizer and evaluation stay fp32")
    tf32: bool = Field(True, description="CUDA only: TF32 tensor cores for fp32 matmuls and convolutions")
    micro_batch_size: Optional[int] = Field(
        None, ge=1, description="gradient accumulation: each step's batch_size rows in micro-batches of this many; null = one")
    compile: bool = Field(False, description="torch.compile the module (in place) before training")

    @field_validator("micro_batch_size")
    @classmethod
    def _micro_batches_divide(cls, v: Optional[int], info: ValidationInfo) -> Optional[int]:
        batch = info.data.get("batch_size")  # absent when batch_size itself failed validation
        if v is not None and batch is not None and batch % v:
            raise ValueError(f"micro_batch_size={v} must divide batch_size={batch}")
        return v


class EvaluationConfig(Strict):
    every: Optional[int] = Field(None, ge=1, description="steps between evaluations; null = only at the end")


COMPONENT_FIELDS = ("task", "model", "method")
# Operational settings left out of the run_id: resuming from a checkpoint is bit-identical to an
# uninterrupted run, so turning checkpoints on for a finished suite retrains nothing.
NOT_HASHED = (("training", "checkpoint_every"),)
# Settings added after runs existed: left out of the run_id while at their default, so that the runs of a
# store made before them keep their run_ids (and are not retrained); set to anything else, they are hashed.
HASHED_UNLESS_DEFAULT = (("training", "precision"), ("training", "tf32"), ("training", "micro_batch_size"),
                         ("training", "compile"))


class Source(Strict):
    """The run a stage's run starts from (harness.spec.stages): its stage, run_id and resolved config.
    The worker rebuilds it from `config` and loads its checkpoint, found in the store by `run_id`."""

    stage: str
    run_id: str
    config: RunConfig


class RunConfig(Strict):
    """Everything that determines one run's result.  Its canonical JSON hashes to the run_id (a stage
    run's source enters as its stage and run_id, which is itself the hash of the source's config)."""

    task: SerializeAsAny[ComponentConfig]
    model: SerializeAsAny[ComponentConfig]
    method: SerializeAsAny[ComponentConfig]
    optimizer: OptimizerConfig = OptimizerConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    seed: Seed = 0
    source: Optional[Source] = None
    profile: str = Field("", description="the suite profile the run belongs to (--profile); '' = the suite as written")

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
        for section, key in HASHED_UNLESS_DEFAULT:
            if data[section][key] == type(getattr(self, section)).model_fields[key].default:
                data[section].pop(key)
        if not self.profile:
            data.pop("profile")  # runs of the suite as written hash as they did before profiles existed
        if self.source is None:
            data.pop("source")  # configs without a source hash as they did before stages existed
        else:
            data["source"] = {"stage": self.source.stage, "run_id": self.source.run_id}
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def content_hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]

    def flat(self) -> dict[str, Any]:
        """Flattened `a.b.c -> value` view (for MLflow params and DataFrame columns).  A stage run's source
        shows as `source.stage`, `source.run_id` and the source's own paths under `source.` (e.g.
        `source.method.mask.n_targets`)."""
        data = self.model_dump(mode="json", exclude={"source"} | (set() if self.profile else {"profile"}))
        out = flatten(data)
        if self.source is not None:
            out.update({"source.stage": self.source.stage, "source.run_id": self.source.run_id})
            out.update({f"source.{k}": v for k, v in self.source.config.flat().items()})
        return out


Source.model_rebuild()
COMPONENT_KEYS = COMPONENT_FIELDS
SET_BY_HARNESS = ("source", "profile")  # stages set `source`, --profile sets `profile`
CONFIG_KEYS = tuple(k for k in RunConfig.model_fields if k not in SET_BY_HARNESS)  # what a suite may write


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
    stage: str = Field("", description="the stage of a suite that declares stages (its first stage: the suite's `stage`)")
    source_name: str = Field("", description="a stage run's source run, by name")
    dropped: list[str] = Field(default_factory=list, description="suite parameters this run's components do not have "
                                                                 "(dropped when a component's name was switched)")

    @classmethod
    def create(cls, suite: str, config: RunConfig, labels: dict[str, Label], ablation: str = "", stage: str = "",
               source_name: str = "", dropped: list[str] = ()) -> RunSpec:
        return cls(run_id=config.content_hash(), suite=suite, config=config, labels=labels, ablation=ablation,
                   stage=stage, source_name=source_name, dropped=sorted(set(dropped)))

    def _parts(self) -> list[str]:
        """What varies, without the seed: the stage (of a stage run), the ablation, each axis value by its short name."""
        labels = {k: v for k, v in self.labels.items() if k != "seed"}
        shorts = [short_path(k) for k in labels]
        keys = [sh if shorts.count(sh) == 1 else k for sh, k in zip(shorts, labels)]  # two axes with one short name: full paths
        parts = [self.stage] if self.source_name else []
        parts += [self.ablation] if self.ablation else []
        return parts + [f"{k}={v}" for k, v in zip(keys, labels.values())]

    @property
    def name(self) -> str:
        """The MLflow run name, led by what varies: `[stage] [ablation] task=shapes method=mae ratio=0.9 seed=1 [<- source]`."""
        return " ".join([*self._parts(), f"seed={self.config.seed}", *([f"<- {self.source_name}"] if self.source_name else [])])

    @property
    def cell(self) -> str:
        """The run without its seed (nor its source's seed): the runs of one cell differ only by seed, and
        are the rows a report averages.  `default` for a suite with neither axes nor ablations."""
        source = " ".join(t for t in self.source_name.split() if not t.startswith("seed="))
        return " ".join([*self._parts(), *([f"<- {source}"] if self.source_name else [])]) or "default"


def short_path(path: str) -> str:
    """model.pos_emb -> pos_emb; a component's name by its component: task.name -> task, method.name -> method."""
    parts = path.split(".")
    return parts[-2] if len(parts) > 1 and parts[-1] == "name" else parts[-1]


# ---------------------------------------------------------------- the suite file
AxisValues = list[Any]


class WhenBranch(Strict):
    """Conditional axes: points matching `if` get `set` applied and are crossed with `grid`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    if_: dict[str, Union[Scalar, list[Scalar]]] = Field(alias="if", min_length=1)
    set: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, AxisValues] = Field(default_factory=dict)


BACKENDS = ("local", "ray", "slurm")  # harness.backends implements each


class SlurmSpec(Strict):
    """Where and how the `slurm` backend submits (sbatch options; `key.path=value` overrides on the command
    line set them too, e.g. `scheduler.slurm.partition=gpu`)."""

    partition: Optional[str] = None
    time_min: int = Field(60, ge=1, description="time limit of one run's job, minutes")
    account: Optional[str] = None
    qos: Optional[str] = None
    mem_gb: Optional[float] = Field(None, gt=0)
    gpus: bool = Field(False, description="each run asks a GPU share: a whole GPU (slots_per_gpu 1) or one GRES shard")
    array: bool = Field(True, description="submit the runs that start together as one job array")
    folder: Optional[str] = Field(None, description="submitit's job folder (shared by the nodes); null = the suite's log dir")
    max_requeues: int = Field(3, ge=0, description="time-outs a job may be requeued after (resuming from its checkpoint)")
    sbatch: dict[str, Union[str, int, bool]] = Field(default_factory=dict, description="any other sbatch option, e.g. {constraint: a100}")


class SchedulerSpec(Strict):
    workers: Optional[int] = Field(None, ge=1, description="CPU worker processes (slurm: jobs in flight); null = number of cores")
    slots_per_gpu: int = Field(1, ge=1)
    max_retries: int = Field(0, ge=0)
    max_runs: int = Field(10_000, ge=1, description="the most runs the suite may expand to (a grid or sweep past it is refused "
                                                     "before it is built)")
    backend: Literal[BACKENDS] = Field("local", description="local warm workers, a warm worker actor per slot on Ray, or a SLURM job per run")
    ray_address: Optional[str] = Field(None, description="address of a running Ray cluster (e.g. 'auto'); null = start a local one")
    slurm: SlurmSpec = SlurmSpec()


def _unique_seeds(v: list[int] | None) -> list[int] | None:
    if v is not None and len(set(v)) != len(v):
        raise ValueError("seeds must be unique")
    return v


def _no_source(v: dict[str, Any]) -> dict[str, Any]:
    if "source" in v:
        raise ValueError("'source' is set by stages (a stage's runs start from the runs of its `from` stage); it cannot be written")
    if "profile" in v:
        raise ValueError("'profile' is set by --profile NAME (a name under the suite's `profiles`); it cannot be written")
    return v


def _profile_names(v: dict[str, Any]) -> dict[str, Any]:
    bad = [k for k in v if not re.fullmatch(r"[A-Za-z0-9_-]+", str(k))]
    if bad:
        raise ValueError(f"a profile name is letters, digits, '_' and '-', got {bad[0]!r}")
    return v


class GridSpec(Strict):
    """What a suite and each of its stages declare alike: a config diff, axes, ablations, tune blocks."""

    defaults: Annotated[dict[str, Any], AfterValidator(_no_source)] = Field(default_factory=dict)
    grid: dict[str, AxisValues] = Field(default_factory=dict)
    zip: dict[str, AxisValues] = Field(default_factory=dict)
    when: list[WhenBranch] = Field(default_factory=list)
    exclude: list[dict[str, Union[Scalar, list[Scalar]]]] = Field(default_factory=list)
    ablations: dict[str, dict[str, Any]] = Field(default_factory=dict)
    tune: list[TuneSpec] = Field(default_factory=list, description="hyper-parameter searches run before the final runs")


class StageScheduler(Strict):
    workers: Optional[int] = Field(None, ge=1, description="at most this many runs of the stage at once; null = no cap")
    max_retries: Optional[int] = Field(None, ge=0, description="null = the suite's")


class StageSpec(GridSpec):
    """A later stage: every run of stage `from` (matching `where`) crossed with this stage's grid; a run's
    config is its source's config with this stage's `defaults` and axis values applied."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    from_: str = Field(alias="from", description="the stage whose runs these start from")
    where: dict[str, Union[Scalar, list[Scalar]]] = Field(default_factory=dict, description="which source runs (config paths, ablation)")
    seeds: Optional[list[Seed]] = Field(None, min_length=1, description="null = each source run's seed")
    scheduler: StageScheduler = StageScheduler()

    _seeds = field_validator("seeds")(classmethod(lambda cls, v: _unique_seeds(v)))


class SuiteSpec(GridSpec):
    name: Name
    description: str = ""
    include: Optional[str] = None
    defaults: Annotated[dict[str, Any], AfterValidator(_no_source)]
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1)
    references: References = Field(default_factory=dict, description="reference arms by name: floors and ceilings (claim_models.ReferenceSpec)")
    claims: Claims = Field(default_factory=list)
    scheduler: SchedulerSpec = SchedulerSpec()
    report: ReportSpec = ReportSpec()
    stage: Name = Field("main", description="name of the suite's own (first) stage")
    stages: dict[Name, StageSpec] = Field(default_factory=dict, description="later stages, in order (harness.spec.stages)")
    profiles: Annotated[dict[str, dict[str, Any]], AfterValidator(_profile_names)] = Field(
        default_factory=dict, description="named diffs on the whole suite, one applied with --profile NAME (harness.spec.profiles)")
    profile: str = Field("", description="the profile applied: set by --profile, not written in a suite")

    _seeds = field_validator("seeds")(classmethod(lambda cls, v: _unique_seeds(v)))
