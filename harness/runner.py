"""run_one: RunSpec -> built components -> fit -> tracker.  Runs inside a worker process.

A stage run (`config.source` set) starts from its source run: the source's components are rebuilt from
its config, its weights loaded from its checkpoint (the `model.pt` artifact of its FINISHED run, found in
the tracking store by its run_id, so that a remote server or another node works), then the stage's own
method takes what it needs from it: `from_source(source_method)` if it defines it (a probe reads the
source's representation), else the source's module weights, copied whole (fine-tuning or continuing
with the same architecture)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch

from harness.components import METHODS, MODELS, TASKS, FromSource, Method, Movable, Task
from harness.estimate import estimate
from harness.spec.models import RunConfig, RunSpec, Source
from harness.tags import Outcome, Tag
from harness.track import CHECKPOINT_ARTIFACT_DIR, RunLog
from harness.train import fit, seed_everything
from harness.train.callbacks import Callback, LogTo
from harness.train.loop import FitResult, load_checkpoint
from harness.train.resume import Checkpointer, TrainState


def build(cfg: RunConfig) -> tuple[Task, Method]:
    task = TASKS.get(cfg.task.name).build(cfg.task, cfg.seed)
    model = MODELS.get(cfg.model.name).build(cfg.model, task)
    return task, METHODS.get(cfg.method.name).build(cfg.method, model, task)


FetchCheckpoint = Callable[[Source], Path]  # a stage run's source -> its model.pt on this machine


def start_from(method: Method, source: Method) -> None:
    """Give a stage run's method what it starts from (module docstring)."""
    if isinstance(method, FromSource):
        method.from_source(source)
        return
    try:
        method.module.load_state_dict(source.module.state_dict())
    except RuntimeError as e:
        raise RuntimeError(f"the stage's method {type(method).__name__} cannot start from its source's weights "
                           f"({type(source).__name__}); give it a from_source() or use the same architecture: {e}") from None


def build_run(cfg: RunConfig, fetch: FetchCheckpoint | None = None) -> tuple[Task, Method]:
    """`build`, and for a stage run its source rebuilt, its checkpoint loaded, and `start_from`."""
    if cfg.source is None:
        return build(cfg)
    if fetch is None:
        raise RuntimeError("a stage run needs its source's checkpoint: no store to fetch it from")
    _, source = build(cfg.source.config)
    load_checkpoint(source.module, fetch(cfg.source))
    task, method = build(cfg)
    start_from(method, source)
    return task, method


def pick_device(cfg: RunConfig) -> torch.device:
    want = cfg.training.device
    if want == "cuda" or (want == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def train_stream(cfg: RunConfig, task: Task, method: Method) -> Iterator[Movable]:
    """The run's training batches, collated: deterministic given the seed (a resumed run replays it)."""
    data_gen = torch.Generator().manual_seed(cfg.seed)
    collate_gen = torch.Generator().manual_seed(cfg.seed + 1)  # mask streams independent of the data stream
    return (method.collate(b, collate_gen) for b in task.train_batches(cfg.training.batch_size, data_gen))


def for_attempt(cfg: RunConfig, attempt: int) -> RunConfig:
    """The config this attempt trains: an injected fault limited to other attempts is dropped."""
    fault = cfg.training.fault
    if fault is None or fault.attempts is None or attempt in fault.attempts:
        return cfg
    return cfg.model_copy(update={"training": cfg.training.model_copy(update={"fault": None})})


class StoreCheckpointer(Checkpointer):
    """A Checkpointer whose every save is also logged to the tracking store, as the artifact
    `resume/resume.pt` of this attempt (tag checkpoint_step), so that a retry on another node (or
    machine) finds it through the server; `remove` drops it from the store too."""

    def __init__(self, log: RunLog, spec: RunSpec, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.log, self.spec = log, spec

    def save(self, step: int, *args) -> Path:
        path = super().save(step, *args)
        self.log.log_artifact(path, CHECKPOINT_ARTIFACT_DIR)
        self.log.set_tags({Tag.CHECKPOINT_STEP: str(step)})
        return path

    def remove(self) -> None:
        """The run is over: the checkpoints of all its attempts leave the store."""
        super().remove()
        for mlflow_id, _ in self.log.tracker.checkpoints(self.spec.suite, self.spec.run_id):
            self.log.tracker.drop_checkpoint(mlflow_id)


def fetch_store_checkpoint(log: RunLog, spec: RunSpec, resume_file: Path) -> None:
    """Download the furthest resume checkpoint any attempt of this run left in the store to `resume_file`."""
    found = log.tracker.checkpoints(spec.suite, spec.run_id)
    if found:
        got = log.tracker.download_checkpoint(found[0][0], resume_file.parent / "download")
        got.replace(resume_file)


def run_one(
    spec: RunSpec,
    log: RunLog,
    workdir: Path,
    *,
    callbacks: Sequence[Callback] = (),
    attempt: int = 0,
    resume_file: Path | None = None,
    checkpoints_in_store: bool = False,
) -> FitResult:
    """Train one run.  With `resume_file`, a checkpoint found there is resumed from (the metric history
    up to it is copied from the attempt that wrote it, tag `resumed_from_step`), `training.checkpoint_every`
    saves one there, and it is removed once the run is over.  `checkpoints_in_store`: `resume_file` is a
    local scratch path; checkpoints come from and go to the tracking store (StoreCheckpointer)."""
    cfg = for_attempt(spec.config, attempt)
    seed_everything(cfg.seed)
    device = pick_device(cfg)
    task, method = build_run(cfg, lambda src: log.tracker.checkpoint(spec.suite, src.run_id, workdir / "source"))
    n_params = sum(p.numel() for p in method.module.parameters())
    log.log_params(spec.config.flat())
    log.set_tags({Tag.DEVICE: str(device), Tag.N_PARAMS: str(n_params)})
    log.log_text(spec.model_dump_json(indent=2), "config.json")
    batches = train_stream(cfg, task, method)
    resume, checkpointer = None, None
    if resume_file is not None:
        if checkpoints_in_store:
            resume_file.parent.mkdir(parents=True, exist_ok=True)
            fetch_store_checkpoint(log, spec, resume_file)
        if resume_file.exists():
            resume = TrainState.load(resume_file)
            if resume.meta["mlflow_id"] != log.id:  # else: this very run resumed in place (RunLog.reopen)
                log.copy_history(resume.meta["mlflow_id"], resume.step)
            log.set_tags({Tag.RESUMED_FROM: str(resume.step)})
        meta = {"mlflow_id": log.id}
        if checkpoints_in_store:
            checkpointer = StoreCheckpointer(log, spec, resume_file, cfg.training.checkpoint_every, meta, before_save=log.flush)
        else:
            checkpointer = Checkpointer(resume_file, cfg.training.checkpoint_every, meta, before_save=log.flush)
    result = fit(
        method,
        batches,
        cfg,
        callbacks=[LogTo(log, cfg.training.log_every), *callbacks],
        device=device,
        checkpoint_dir=workdir,
        checkpointer=checkpointer,
        resume=resume,
        flops_per_step=estimate(cfg).flops_per_step if device.type == "cuda" else None,  # for the MFU
    )
    log.log_metrics({"time/train_seconds": result.seconds, "n_params": float(n_params), **result.throughput}, result.steps)
    log.set_tags({Tag.OUTCOME: result.status})
    if result.status == Outcome.DIVERGED:
        log.log_metrics({"train/diverged_at_step": float(result.steps)}, result.steps)
    if result.checkpoint is not None:
        log.log_artifact(result.checkpoint)
    if checkpointer is not None:
        checkpointer.remove()
    log.set_tags({Tag.TRACKING_SECONDS: f"{log.seconds:.3f}"})  # time in tracking calls so far (not the final flush)
    return result
