"""I-JEPA (Assran et al. 2023, "Self-Supervised Learning from Images with a Joint-Embedding Predictive
Architecture"): predict, in representation space, the target encoder's tokens of masked blocks from the
context encoder's tokens of the visible context.

    context encoder  = the model (a `vit`), trained by gradient, sees only the context patches
    target encoder   = an EMA copy of the context encoder: requires_grad False, run under no_grad on all
                       patches (its output never carries a gradient), updated after every optimizer step by
                           target <- m * target + (1 - m) * context,   m from ema_start linearly to ema_end
    predictor        = narrow transformer over [context tokens, mask tokens at the target positions]
    loss             = l2 (MSE) or smooth_l1 between the predictions and layer-normed target tokens

The mask sampler (`mask`, default multi-block) runs in `collate`, in the data stream.  evaluate() probes
the TARGET encoder (as I-JEPA evaluates it): probe/linear, probe/knn, collapse/* (baselines/ssl/evaluation.py),
and ema/momentum, the momentum of the last update.
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from baselines.ssl.evaluation import PROBE_METRICS, ProbedConfig, probe_metrics
from baselines.ssl.heads import JEPAPredictor, gather_targets
from baselines.ssl.masks import MaskConfig, MaskedImageBatch, MultiBlockMaskConfig, build_mask_sampler, collate_masks
from baselines.ssl.vit import ViT
from baselines.tasks.images import ImageBatch, ImageTask, image_task
from harness.components import METHODS, LossOutput, Task
from harness.registry import must_divide


class JEPAConfig(ProbedConfig):
    pred_d_model: int = Field(default=32, ge=4)  # the predictor is narrower than the encoder
    pred_n_layers: int = Field(default=2, ge=1)
    pred_n_heads: int = Field(default=4, ge=1)
    pred_d_ff: int | None = Field(default=None, ge=1)  # None -> 4 * pred_d_model
    ema_start: float = Field(default=0.996, ge=0.0, le=1.0)  # momentum of the first update
    ema_end: float = Field(default=1.0, ge=0.0, le=1.0)  # momentum of the last update
    loss: Literal["l2", "smooth_l1"] = "l2"
    mask: MaskConfig = Field(default_factory=lambda: MultiBlockMaskConfig(name="multiblock"))

    _heads_divide = must_divide("pred_n_heads", "pred_d_model")

    @model_validator(mode="after")
    def _schedule_rises(self) -> JEPAConfig:
        if self.ema_end < self.ema_start:
            raise ValueError(f"ema_end={self.ema_end} must be >= ema_start={self.ema_start}")
        return self


def ema_momentum(step: int, total_steps: int, start: float, end: float) -> float:
    """Momentum of the update after optimizer step `step` (1-based): `start` at step 1, `end` at the last."""
    progress = (step - 1) / max(total_steps - 1, 1)
    return start + (end - start) * min(max(progress, 0.0), 1.0)


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target <- momentum * target + (1 - momentum) * online, parameter by parameter."""
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        t.mul_(momentum).add_(o.detach(), alpha=1.0 - momentum)


class JEPA:
    def __init__(self, cfg: JEPAConfig, encoder: ViT, task: ImageTask) -> None:
        self.cfg = cfg
        self.task = task
        predictor = JEPAPredictor(
            encoder.d_model, cfg.pred_d_model, cfg.pred_n_layers, cfg.pred_n_heads, cfg.pred_d_ff, encoder.grid
        )
        target = copy.deepcopy(encoder).requires_grad_(False).eval()
        # `module` holds the target too (it moves to the device and is checkpointed with the rest); the
        # optimizer and grad clipping only see parameters with requires_grad, so it is never trained.
        self.module = nn.ModuleDict({"encoder": encoder, "predictor": predictor, "target": target})
        self.sampler = build_mask_sampler(cfg.mask, encoder.grid)
        self.momentum = cfg.ema_start
        self.splits = task.eval_splits()

    @property
    def encoder(self) -> ViT:
        return self.module["encoder"]

    @property
    def target(self) -> ViT:
        return self.module["target"]

    @property
    def predictor(self) -> JEPAPredictor:
        return self.module["predictor"]

    def collate(self, batch: ImageBatch, generator: torch.Generator) -> MaskedImageBatch:
        return collate_masks(batch, self.sampler, generator)

    def target_tokens(self, images: torch.Tensor, target_idx: torch.Tensor) -> torch.Tensor:
        """Layer-normed target-encoder tokens of the target blocks, [B, M, Nt, D], without a graph."""
        self.target.eval()  # the target never sees dropout
        with torch.no_grad():
            h = self.target(images)  # [B, N, D] on all patches
            h = F.layer_norm(h, h.shape[-1:])  # [B, N, D] normalized over features (I-JEPA)
            return gather_targets(h, target_idx)  # [B, M, Nt, D]

    def loss(self, batch: MaskedImageBatch) -> LossOutput:
        images = batch.images  # [B, C, H, W]
        context_idx, target_idx = batch.masks.context, batch.masks.targets  # [B, Nc], [B, M, Nt]
        h = self.target_tokens(images, target_idx)  # [B, M, Nt, D]
        z = self.encoder(images, keep=context_idx)  # [B, Nc, D] context patches only
        pred = self.predictor(z, context_idx, target_idx)  # [B, M, Nt, D]
        if self.cfg.loss == "l2":
            loss = F.mse_loss(pred, h)
        else:
            loss = F.smooth_l1_loss(pred, h)
        metrics = {
            "ema_momentum": self.momentum,
            "context_patches": float(context_idx.shape[1]),
            "target_patches": float(target_idx.shape[1] * target_idx.shape[2]),
        }
        return LossOutput(loss=loss, metrics=metrics)

    def after_step(self, step: int, total_steps: int) -> None:
        self.momentum = ema_momentum(step, total_steps, self.cfg.ema_start, self.cfg.ema_end)
        ema_update(self.target, self.encoder, self.momentum)

    def state_dict(self) -> dict[str, float]:
        """Training state outside `module`, for resume checkpoints (harness.train.resume.Stateful)."""
        return {"momentum": self.momentum}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.momentum = state["momentum"]

    def evaluate(self) -> dict[str, float]:
        metrics = probe_metrics(self.target, self.task, self.splits, self.cfg)
        metrics["ema/momentum"] = self.momentum
        return metrics


@METHODS.register("jepa", JEPAConfig, metrics=lambda cfg, task: [
    *PROBE_METRICS, "ema/momentum", "train/ema_momentum", "train/context_patches", "train/target_patches"])
def build(cfg: JEPAConfig, model: nn.Module, task: Task) -> JEPA:
    if not isinstance(model, ViT):
        raise TypeError(f"method jepa needs the vit model; {type(model).__name__} is not one")
    return JEPA(cfg, model, image_task(task, "method jepa"))
