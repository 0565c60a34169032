"""Optimizer and learning-rate schedule from an OptimizerConfig."""

from __future__ import annotations

import math

import torch
from torch import nn

from harness.spec.models import OptimizerConfig

NO_WEIGHT_DECAY = "_no_weight_decay"  # attribute a model sets on a parameter to exempt it from decay


def no_weight_decay(*params: nn.Parameter) -> None:
    """Exempt parameters that are not weights from weight decay (e.g. SSM state matrices such as
    Mamba's A_log or S4D's A: decaying them toward 0 changes the dynamics, not the capacity)."""
    for p in params:
        setattr(p, NO_WEIGHT_DECAY, True)


def decays(p: nn.Parameter) -> bool:
    return p.dim() >= 2 and not getattr(p, NO_WEIGHT_DECAY, False)


def build_optimizer(module: nn.Module, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """Weight decay on weight matrices only: not on biases, norms, or parameters marked `no_weight_decay`."""
    params = [p for p in module.parameters() if p.requires_grad]
    decay = [p for p in params if decays(p)]
    no_decay = [p for p in params if not decays(p)]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)
    if cfg.name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.betas)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)


def lr_factor(step: int, total: int, cfg: OptimizerConfig) -> float:
    """Multiplier of the peak lr at `step` (0-based): linear warmup, then constant/cosine/linear decay."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    progress = min(1.0, progress)
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if cfg.schedule == "cosine" else 1 - progress
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * shape


def build_schedule(opt: torch.optim.Optimizer, total_steps: int, cfg: OptimizerConfig):
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total_steps, cfg))
