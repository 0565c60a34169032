"""The one training loop.  A method plugs in through `loss(batch)` and `evaluate()`; everything
else (optimizer, schedule, clipping, evaluation cadence, NaN guard, checkpoints, resume, seeding, precision,
gradient accumulation, torch.compile, throughput) is here.

One step: the batch is cut into micro-batches (`training.micro_batch_size`, harness.train.precision), each
one's loss computed under autocast (`training.precision`), weighted by its share of the batch and
backpropagated (through the fp16 grad scaler), then the gradients are unscaled, clipped, and one
optimizer and schedule step is taken.  With the defaults (fp32, one micro-batch) a step is exactly
loss -> backward -> clip -> step, and a resumed run is bit-identical to an uninterrupted one."""

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

from harness.components import Method, Movable, tokens_in
from harness.spec.models import RunConfig
from harness.train.callbacks import Callback, EvalEvery
from harness.train.optim import build_optimizer, build_schedule
from harness.train.precision import Numerics, micro_batches
from harness.train.resume import Checkpointer, TrainState
from harness.train.throughput import Throughput

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
    throughput: dict[str, float] = field(default_factory=dict)  # throughput/* (harness.train.throughput)


def fit(
    method: Method,
    batches: Iterator[Movable],
    cfg: RunConfig,
    callbacks: Sequence[Callback] = (),
    device: torch.device = CPU,
    checkpoint_dir: Path | None = None,
    checkpointer: Checkpointer | None = None,
    resume: TrainState | None = None,
    flops_per_step: float | None = None,
) -> FitResult:
    """Train for `cfg.training.steps` steps.  `checkpointer` saves resume checkpoints periodically;
    `resume` (a loaded one) continues a run after the step it was taken at, bit-identically.
    `flops_per_step` (harness.estimate) gives the MFU on CUDA."""
    t0 = time.perf_counter()
    tcfg = cfg.training
    module = method.module.to(device)
    module.train()
    if tcfg.compile:
        module.compile()  # in place: parameter names (state dicts, checkpoints) stay as they are
    opt = build_optimizer(module, cfg.optimizer)
    sched = build_schedule(opt, tcfg.steps, cfg.optimizer)
    numerics = Numerics(tcfg.precision, device, tcfg.tf32)
    evals = EvalEvery(cfg.evaluation.every)
    params = [p for p in module.parameters() if p.requires_grad]
    status: Literal["finished", "diverged"] = "finished"
    metrics: dict[str, float] = {}
    start = 0 if resume is None else resume.restore(method, module, opt, sched, batches, numerics.scaler)
    speed = Throughput(device, flops_per_step, tcfg.precision, tcfg.tf32)
    step = start  # the last step trained (stays `start` if there is nothing left to train)
    for step in range(start + 1, tcfg.steps + 1):
        speed.start()  # a step's time includes drawing its batch
        batch = next(batches)
        opt.zero_grad(set_to_none=True)
        loss_value, scalars = 0.0, {}
        for part, weight in micro_batches(method, batch, tcfg.micro_batch_size):
            with numerics.autocast():
                out = method.loss(part.to(device))
            loss = out.loss if weight == 1.0 else out.loss * weight
            if tcfg.fault is not None and step == tcfg.fault.at_step:
                loss = inject_fault(tcfg.fault.kind, step, loss)
            part_value = float(loss.detach())
            loss_value += part_value
            if not math.isfinite(part_value):
                break
            numerics.backward(loss)
            for k, v in out.metrics.items():
                scalars[k] = scalars.get(k, 0.0) + weight * v
        if not math.isfinite(loss_value):
            status = "diverged"
            for cb in callbacks:
                cb.on_step(step, {"loss": loss_value})
            break
        scalars = {"loss": loss_value, "lr": sched.get_last_lr()[0], **scalars}
        numerics.unscale(opt)
        if tcfg.grad_clip is not None:
            scalars["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, tcfg.grad_clip))
        numerics.step(opt)
        sched.step()
        method.after_step(step, tcfg.steps)
        speed.stop(len(batch), tokens_in(method, batch))
        for cb in callbacks:
            cb.on_step(step, scalars)
        if evals.due(step) and step != tcfg.steps:
            metrics = method.evaluate()
            for cb in callbacks:
                cb.on_eval(step, metrics)
        if checkpointer is not None and checkpointer.due(step, tcfg.steps):
            checkpointer.save(step, method, module, opt, sched, numerics.scaler)
    metrics = method.evaluate()
    for cb in callbacks:
        cb.on_eval(step, metrics)
    ckpt = None
    if tcfg.checkpoint and checkpoint_dir is not None and status == "finished":
        ckpt = save_checkpoint(module, checkpoint_dir / "model.pt")
    return FitResult(status, step, metrics, time.perf_counter() - t0, ckpt, throughput=speed.metrics())


def inject_fault(kind: str, step: int, loss: torch.Tensor) -> torch.Tensor:
    """`training.fault` (tests of the orchestrator): raise, exit, SIGKILL, or a NaN loss."""
    if kind == "raise":
        raise InjectedFault(f"injected fault at step {step}")
    if kind == "exit":
        os._exit(3)
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    return loss * float("nan")


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
