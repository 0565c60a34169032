"""run_one: RunSpec -> built components -> fit -> tracker.  Runs inside a worker process."""

from __future__ import annotations

from pathlib import Path

import torch

from harness.components import METHODS, MODELS, TASKS, Method, Task
from harness.spec.models import RunConfig, RunSpec
from harness.track import RunLog
from harness.train import fit, seed_everything
from harness.train.callbacks import LogTo
from harness.train.loop import FitResult


def build(cfg: RunConfig) -> tuple[Task, Method]:
    task = TASKS.get(cfg.task.name).build(cfg.task, cfg.seed)
    model = MODELS.get(cfg.model.name).build(cfg.model, task)
    return task, METHODS.get(cfg.method.name).build(cfg.method, model, task)


def pick_device(cfg: RunConfig) -> torch.device:
    want = cfg.training.device
    if want == "cuda" or (want == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def run_one(spec: RunSpec, log: RunLog, workdir: Path) -> FitResult:
    cfg = spec.config
    seed_everything(cfg.seed)
    device = pick_device(cfg)
    task, method = build(cfg)
    n_params = sum(p.numel() for p in method.module.parameters())
    log.log_params(cfg.flat())
    log.set_tags({"device": str(device), "n_params": str(n_params)})
    log.log_text(spec.model_dump_json(indent=2), "config.json")
    data_gen = torch.Generator().manual_seed(cfg.seed)
    collate_gen = torch.Generator().manual_seed(cfg.seed + 1)  # mask streams independent of the data stream
    batches = (method.collate(b, collate_gen) for b in task.train_batches(cfg.training.batch_size, data_gen))
    result = fit(
        method,
        batches,
        cfg,
        callbacks=[LogTo(log, cfg.training.log_every)],
        device=device,
        checkpoint_dir=workdir,
    )
    log.log_metrics({"time/train_seconds": result.seconds, "n_params": float(n_params)}, result.steps)
    log.set_tags({"outcome": result.status})
    if result.status == "diverged":
        log.log_metrics({"train/diverged_at_step": float(result.steps)}, result.steps)
    if result.checkpoint is not None:
        log.log_artifact(result.checkpoint)
    return result
