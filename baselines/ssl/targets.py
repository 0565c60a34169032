"""The target side of JEPA: the EMA teacher's schedule and update, target normalization, latent losses.

    ema_momentum(step, total, start, end, schedule)   momentum of the update after optimizer step `step`:
        linear   start -> end linearly (I-JEPA: 0.996 -> 1.0)
        cosine   end - (end - start) * (1 + cos(pi * progress)) / 2 (BYOL)
    ema_update(target, online, m)      target <- m * target + (1 - m) * online, parameter by parameter
    normalize_targets(h, norm)         layer: LayerNorm over features without affine (I-JEPA); none
    latent_loss(pred, target, kind)    l2 (MSE), smooth_l1 (Huber with `beta`; I-JEPA's code, Point-JEPA
                                       beta 2), l1 (S-JEPA, ACT-JEPA), cosine (1 - cos, 3D-JEPA), each a
                                       mean over target tokens
    EmaTargetConfig                    the config fields of an EMA target (ema_start, ema_end, ema_schedule,
                                       target_norm), for any component that keeps one (JEPA, ACT-JEPA's objective)
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from harness.registry import ComponentConfig

EmaSchedule = Literal["linear", "cosine"]
TargetNorm = Literal["layer", "none"]
LatentLoss = Literal["l2", "smooth_l1", "l1", "cosine"]


class EmaTargetConfig(ComponentConfig):
    """The fields of a component that keeps an EMA target (module docstring); mixed into its config."""

    ema_start: float = Field(default=0.996, ge=0.0, le=1.0)  # momentum of the first update
    ema_end: float = Field(default=1.0, ge=0.0, le=1.0)  # momentum of the last update
    ema_schedule: EmaSchedule = "linear"
    target_norm: TargetNorm = "layer"

    @model_validator(mode="after")
    def _schedule_rises(self) -> EmaTargetConfig:
        if self.ema_end < self.ema_start:
            raise ValueError(f"ema_end={self.ema_end} must be >= ema_start={self.ema_start}")
        return self


def ema_momentum(step: int, total_steps: int, start: float, end: float, schedule: EmaSchedule = "linear") -> float:
    """Momentum of the update after optimizer step `step` (1-based): `start` at step 1, `end` at the last."""
    progress = min(max((step - 1) / max(total_steps - 1, 1), 0.0), 1.0)
    if schedule == "cosine":
        return end - (end - start) * (1 + math.cos(math.pi * progress)) / 2
    return start + (end - start) * progress


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target <- momentum * target + (1 - momentum) * online, parameter by parameter."""
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        t.mul_(momentum).add_(o.detach(), alpha=1.0 - momentum)


def normalize_targets(h: torch.Tensor, norm: TargetNorm) -> torch.Tensor:
    """h [..., D] -> normalized over its features (layer) or unchanged (none)."""
    return F.layer_norm(h, h.shape[-1:]) if norm == "layer" else h


def latent_loss(pred: torch.Tensor, target: torch.Tensor, kind: LatentLoss, beta: float = 1.0) -> torch.Tensor:
    """pred, target [..., D] -> a scalar loss (module docstring)."""
    if kind == "l2":
        return F.mse_loss(pred, target)
    if kind == "smooth_l1":
        return F.smooth_l1_loss(pred, target, beta=beta)
    if kind == "l1":
        return F.l1_loss(pred, target)
    return (1 - F.cosine_similarity(pred, target, dim=-1)).mean()
