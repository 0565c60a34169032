"""Optimizer and learning-rate schedule from an OptimizerConfig."""

from __future__ import annotations

import math

import torch
from torch import nn

from harness.spec.models import OptimizerConfig


def build_optimizer(module: nn.Module, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """Weight decay on matrices only (not on biases, norms or embeddings' 1-d params)."""
    params = [p for p in module.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
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
