"""JEPA (I-JEPA, Assran et al. 2023, "Self-Supervised Learning from Images with a Joint-Embedding Predictive
Architecture"), over any tokenizer: predict, in representation space, the target encoder's tokens at the
target positions from the context encoder's tokens of the visible context.

    context encoder  = the model (a TokenEncoder: `token_encoder` or `vit`), trained by gradient, sees only
                       the context tokens
    target encoder   = an EMA copy of the context encoder: requires_grad False, run under no_grad on all
                       tokens (its output never carries a gradient), updated after every optimizer step by
                           target <- m * target + (1 - m) * context,   m from ema_start to ema_end
                       (`ema_schedule` linear or cosine; baselines/ssl/targets.py)
    predictor        = `predictor` (PREDICTORS; default I-JEPA's narrow concat transformer), whose mask tokens
                       carry the positional encoding of the target positions
    loss             = `loss` (l2, smooth_l1 with smooth_l1_beta, l1, cosine) between the predictions and the
                       target tokens, normalized by `target_norm` (layer: I-JEPA)

The mask sampler (`mask`, default multi-block) runs in `collate`, in the data stream.  The paper's defaults:
EMA 0.996 -> 1 linear, layer-normed targets, a 2-layer predictor; I-JEPA probes the TARGET encoder
(`probe_encoder`; Point-JEPA and T-JEPA probe the context encoder).  Per training step: pred_std, target_std
(baselines/ssl/collapse.py token_std), target_rankme (RankMe of the batch's target tokens), ema_momentum,
the token counts and the sampler's stats.  evaluate(): the probes and collapse/* of baselines/ssl/evaluation.py,
ema/momentum and eval/step.
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from baselines.methods.masked import MaskedMethod, masked_metric_names
from baselines.ssl.blocks import gather_targets
from baselines.ssl.collapse import batch_rankme, token_std
from baselines.ssl.encoder import TokenEncoder, token_encoder
from baselines.ssl.evaluation import ProbedConfig
from baselines.ssl.grid_masks import MultiBlockMaskConfig
from baselines.ssl.layout import Layout
from baselines.ssl.masks import MaskConfig, MaskedBatch
from baselines.ssl.predictors import PREDICTORS, ConcatPredictorConfig, build_predictor
from baselines.ssl.registered import Registered
from baselines.ssl.representation import Representation
from baselines.ssl.targets import (
    EmaTargetConfig,
    LatentLoss,
    ema_momentum,
    ema_update,
    latent_loss,
    normalize_targets,
)
from baselines.tasks.labeled import LabeledTask, labeled_task
from harness.components import METHODS, LossOutput, Task


class JEPAConfig(ProbedConfig, EmaTargetConfig):  # ema_start, ema_end, ema_schedule, target_norm
    predictor: Registered(PREDICTORS) = Field(default_factory=ConcatPredictorConfig)
    loss: LatentLoss = "l2"
    smooth_l1_beta: float = Field(default=1.0, gt=0.0)  # smooth_l1 only (Point-JEPA: 2)
    mask: MaskConfig = Field(default_factory=MultiBlockMaskConfig)
    probe_encoder: Literal["target", "context"] = "target"


class JEPA(MaskedMethod):
    def __init__(self, cfg: JEPAConfig, encoder: TokenEncoder, task: LabeledTask) -> None:
        super().__init__(cfg, cfg.mask, encoder, task)
        self.cfg = cfg
        predictor = build_predictor(cfg.predictor, encoder.d_model, encoder.d_model, encoder.pos_cfg, encoder.layout)
        target = copy.deepcopy(encoder).requires_grad_(False).eval()
        # `module` holds the target too (it moves to the device and is checkpointed with the rest); the
        # optimizer and grad clipping only see parameters with requires_grad, so it is never trained.
        self.module = nn.ModuleDict({"encoder": encoder, "predictor": predictor, "target": target})
        self.momentum = cfg.ema_start

    @property
    def encoder(self) -> TokenEncoder:
        return self.module["encoder"]

    @property
    def target(self) -> TokenEncoder:
        return self.module["target"]

    @property
    def predictor(self) -> nn.Module:
        return self.module["predictor"]

    def target_tokens(self, inputs: torch.Tensor, layout: Layout, target_idx: torch.Tensor) -> torch.Tensor:
        """Normalized target-encoder tokens of the target blocks, [B, M, Nt, D], without a graph."""
        self.target.eval()  # the target never sees dropout
        with torch.no_grad():
            h = self.target(inputs, layout)  # [B, N, D] on all tokens
            h = normalize_targets(h, self.cfg.target_norm)  # [B, N, D]
            return gather_targets(h, target_idx)  # [B, M, Nt, D]

    def loss(self, batch: MaskedBatch) -> LossOutput:
        x, layout = batch.inputs, batch.layout
        context_idx, target_idx = batch.masks.context, batch.masks.targets  # [B, Nc], [B, M, Nt]
        h = self.target_tokens(x, layout, target_idx)  # [B, M, Nt, D]
        z = self.encoder(x, layout, keep=context_idx)  # [B, Nc, D] context tokens only
        pred = self.predictor(z, context_idx, target_idx, layout)  # [B, M, Nt, D]
        loss = latent_loss(pred, h, self.cfg.loss, self.cfg.smooth_l1_beta)
        metrics = {
            "ema_momentum": self.momentum,
            "context_tokens": float(context_idx.shape[1]),
            "target_tokens": float(target_idx.shape[1] * target_idx.shape[2]),
            "pred_std": token_std(pred),
            "target_std": token_std(h),
            "target_rankme": batch_rankme(h),
            **self.step_metrics(batch),
        }
        return LossOutput(loss=loss, metrics=metrics)

    def after_step(self, step: int, total_steps: int) -> None:
        super().after_step(step, total_steps)
        cfg = self.cfg
        self.momentum = ema_momentum(step, total_steps, cfg.ema_start, cfg.ema_end, cfg.ema_schedule)
        ema_update(self.target, self.encoder, self.momentum)

    def representation(self) -> Representation:
        encoder = self.target if self.cfg.probe_encoder == "target" else self.encoder
        return Representation(encoder, encoder, self.cfg.pooling, self.cfg.eval_batch_size)

    def state_dict(self) -> dict[str, float]:
        return {**super().state_dict(), "momentum": self.momentum}

    def load_state_dict(self, state: dict[str, float]) -> None:
        super().load_state_dict(state)
        self.momentum = state["momentum"]

    def evaluate(self) -> dict[str, float]:
        return {**super().evaluate(), "ema/momentum": self.momentum}


LOSS_METRICS = ("ema_momentum", "context_tokens", "target_tokens", "pred_std", "target_std", "target_rankme")


@METHODS.register("jepa", JEPAConfig, provides={"representation"}, metrics=lambda cfg, task: [*masked_metric_names(cfg, cfg.mask, LOSS_METRICS, task),
                                                                  "ema/momentum"])
def build(cfg: JEPAConfig, model: nn.Module, task: Task) -> JEPA:
    return JEPA(cfg, token_encoder(model, "method jepa"), labeled_task(task, "method jepa"))
