"""The one training loop.  A method plugs in through `loss(batch)` and `evaluate()`; everything
else (optimizer, schedule, clipping, evaluation cadence, NaN guard, checkpoints, resume, seeding) is here."""

from __future__ import annotations

import math
import os
import random
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from harness.components import Method, Movable
from harness.spec.models import RunConfig
from harness.train.callbacks import Callback, EvalEvery
from harness.train.optim import build_optimizer, build_schedule
from harness.train.resume import Checkpointer, TrainState

CPU = torch.device("cpu")


class InjectedFault(RuntimeError):
    """Raised by `training.fault: {kind: raise}` (tests of the orchestrator)."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class FitResult:
    status: Literal["finished", "diverged"]
    steps: int
    metrics: dict[str, float] = field(default_factory=dict)  # final evaluation
    seconds: float = 0.0
    checkpoint: Path | None = None


def fit(
    method: Method,
    batches: Iterator[Movable],
    cfg: RunConfig,
    callbacks: Sequence[Callback] = (),
    device: torch.device = CPU,
    checkpoint_dir: Path | None = None,
    checkpointer: Checkpointer | None = None,
    resume: TrainState | None = None,
) -> FitResult:
    """Train for `cfg.training.steps` steps.  `checkpointer` saves resume checkpoints periodically;
    `resume` (a loaded one) continues a run after the step it was taken at, bit-identically."""
    t0 = time.perf_counter()
    tcfg = cfg.training
    module = method.module.to(device)
    module.train()
    opt = build_optimizer(module, cfg.optimizer)
    sched = build_schedule(opt, tcfg.steps, cfg.optimizer)
    evals = EvalEvery(cfg.evaluation.every)
    params = [p for p in module.parameters() if p.requires_grad]
    status: Literal["finished", "diverged"] = "finished"
    metrics: dict[str, float] = {}
    start = 0 if resume is None else resume.restore(method, module, opt, sched, batches)
    step = start  # the last step trained (stays `start` if there is nothing left to train)
    for step in range(start + 1, tcfg.steps + 1):
        out = method.loss(next(batches).to(device))
        loss = out.loss
        if tcfg.fault is not None and step == tcfg.fault.at_step:
            if tcfg.fault.kind == "raise":
                raise InjectedFault(f"injected fault at step {step}")
            if tcfg.fault.kind == "exit":
                os._exit(3)
            if tcfg.fault.kind == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            loss = loss * float("nan")
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            status = "diverged"
            for cb in callbacks:
                cb.on_step(step, {"loss": loss_value})
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        scalars = {"loss": loss_value, "lr": sched.get_last_lr()[0], **out.metrics}
        if tcfg.grad_clip is not None:
            scalars["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, tcfg.grad_clip))
        opt.step()
        sched.step()
        method.after_step(step, tcfg.steps)
        for cb in callbacks:
            cb.on_step(step, scalars)
        if evals.due(step) and step != tcfg.steps:
            metrics = method.evaluate()
            for cb in callbacks:
                cb.on_eval(step, metrics)
        if checkpointer is not None and checkpointer.due(step, tcfg.steps):
            checkpointer.save(step, method, module, opt, sched)
    metrics = method.evaluate()
    for cb in callbacks:
        cb.on_eval(step, metrics)
    ckpt = None
    if tcfg.checkpoint and checkpoint_dir is not None and status == "finished":
        ckpt = save_checkpoint(module, checkpoint_dir / "model.pt")
    return FitResult(status, step, metrics, time.perf_counter() - t0, ckpt)


def save_checkpoint(module: torch.nn.Module, path: Path) -> Path:
    """Save the state dict and prove it loads back with weights_only=True."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    torch.save(state, path)
    loaded = torch.load(path, weights_only=True)
    if loaded.keys() != state.keys() or not all(torch.equal(loaded[k], state[k]) for k in state):
        raise RuntimeError(f"checkpoint {path} does not load back identically")
    return path


def load_checkpoint(module: torch.nn.Module, path: Path) -> None:
    module.load_state_dict(torch.load(path, weights_only=True, map_location="cpu"))
