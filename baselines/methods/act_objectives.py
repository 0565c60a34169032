"""Auxiliary objectives of the `act` method, registered in AUX_OBJECTIVES: what is predicted beside the action
chunk from the policy's context tokens.  ACT, ACT-JEPA and the input-space control are one method with three
values of `method.aux.name`.

    none     ACT: the action chunk only
    latent   ACT-JEPA (arXiv 2501.14622): a query decoder predicts, from the context tokens, the tokens an EMA
             target encoder (a copy of the policy's state encoder: requires_grad False, eval mode, no_grad,
             target <- m target + (1 - m) encoder after each step, m from ema_start to ema_end;
             baselines/ssl/targets.py) gives the future observation sequence s_{t+1..t+T}; loss `loss` (l1 in
             the code read) on `target_norm`-normalized targets, weighted by `weight`
    raw      the input-space control: the same query decoder predicts the future states themselves (their
             E x F numbers per step), loss `loss` (l2), weighted by `weight`

An objective: `module` (its trainable parts; the policy's are not in it), `loss(policy, z, batch) ->
(loss, metrics)` with z the context tokens [B, E, d], `after_step(policy, step, total)`, `state_dict()` /
`load_state_dict()`.  Its config's `step_metrics` names the per-step metrics its loss returns (train/<name>).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from baselines.models.act import ActPolicy, QueryDecoder
from baselines.ssl.collapse import batch_rankme, token_std
from baselines.ssl.targets import EmaTargetConfig, LatentLoss, ema_momentum, ema_update, latent_loss, normalize_targets
from baselines.tasks.pushing import PushBatch
from harness.registry import ComponentConfig, Registry, must_divide

AuxBuilder = Callable[[ComponentConfig, ActPolicy, int], "Objective"]
AUX_OBJECTIVES: Registry[AuxBuilder] = Registry("auxiliary objective")


class Objective:
    """No auxiliary objective (ACT).  The base of the others."""

    weight = 0.0  # of its loss in the method's total

    def __init__(self) -> None:
        self.module = nn.ModuleDict()

    def loss(self, policy: ActPolicy, z: torch.Tensor, batch: PushBatch) -> tuple[torch.Tensor, dict[str, float]]:
        return z.new_zeros(()), {}

    def after_step(self, policy: ActPolicy, step: int, total_steps: int) -> None:
        pass

    def state_dict(self) -> dict[str, float]:
        return {}

    def load_state_dict(self, state: dict[str, float]) -> None:
        pass


class NoAuxConfig(ComponentConfig):
    name: Literal["none"] = "none"
    step_metrics: ClassVar[tuple[str, ...]] = ()


@AUX_OBJECTIVES.register("none", NoAuxConfig)
def build_none(cfg: NoAuxConfig, policy: ActPolicy, horizon: int) -> Objective:
    return Objective()


class FuturePredictorConfig(ComponentConfig):
    """What the latent and raw objectives share: the query decoder's size and the objective's weight."""

    weight: float = Field(default=1.0, ge=0.0)
    d_model: int = Field(default=32, ge=4)
    n_layers: int = Field(default=2, ge=1)
    n_heads: int = Field(default=4, ge=1)

    _heads_divide = must_divide("n_heads", "d_model")


def future_times(horizon: int, device: torch.device) -> torch.Tensor:
    return torch.arange(1, horizon + 1, device=device, dtype=torch.float32)  # [T]: times of s_{t+1..t+T}


class LatentFutureConfig(FuturePredictorConfig, EmaTargetConfig):  # ema_start, ema_end, ema_schedule, target_norm
    name: Literal["latent"] = "latent"
    step_metrics: ClassVar[tuple[str, ...]] = ("aux_loss", "pred_std", "target_std", "target_rankme", "ema_momentum")
    loss: LatentLoss = "l1"


class LatentFuture(Objective):
    def __init__(self, cfg: LatentFutureConfig, policy: ActPolicy, horizon: int) -> None:
        super().__init__()
        self.cfg, self.horizon, self.momentum, self.weight = cfg, horizon, cfg.ema_start, cfg.weight
        n_entities = policy.encoder.weight.shape[0]
        predictor = QueryDecoder(policy.d_model, cfg.d_model, policy.d_model, horizon * n_entities, cfg.n_layers, cfg.n_heads)
        target = copy.deepcopy(policy.encoder).requires_grad_(False).eval()
        # the target rides in `module` (device moves, checkpoints); the optimizer only sees requires_grad params
        self.module = nn.ModuleDict({"predictor": predictor, "target": target})

    def loss(self, policy: ActPolicy, z: torch.Tensor, batch: PushBatch) -> tuple[torch.Tensor, dict[str, float]]:
        target = self.module["target"].eval()
        with torch.no_grad():
            h = target(batch.future, future_times(self.horizon, z.device))  # [B, T*E, d]
            h = normalize_targets(h, self.cfg.target_norm)  # [B, T*E, d]
        pred = self.module["predictor"](z)  # [B, T*E, d]
        loss = latent_loss(pred, h, self.cfg.loss)
        return loss, {"aux_loss": loss.item(), "pred_std": token_std(pred), "target_std": token_std(h),
                      "target_rankme": batch_rankme(h), "ema_momentum": self.momentum}

    def after_step(self, policy: ActPolicy, step: int, total_steps: int) -> None:
        cfg = self.cfg
        self.momentum = ema_momentum(step, total_steps, cfg.ema_start, cfg.ema_end, cfg.ema_schedule)
        ema_update(self.module["target"], policy.encoder, self.momentum)

    def state_dict(self) -> dict[str, float]:
        return {"momentum": self.momentum}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.momentum = state["momentum"]


@AUX_OBJECTIVES.register("latent", LatentFutureConfig)
def build_latent(cfg: LatentFutureConfig, policy: ActPolicy, horizon: int) -> Objective:
    return LatentFuture(cfg, policy, horizon)


class RawFutureConfig(FuturePredictorConfig):
    name: Literal["raw"] = "raw"
    step_metrics: ClassVar[tuple[str, ...]] = ("aux_loss", "pred_std")
    loss: LatentLoss = "l2"


class RawFuture(Objective):
    def __init__(self, cfg: RawFutureConfig, policy: ActPolicy, horizon: int) -> None:
        super().__init__()
        self.cfg, self.weight = cfg, cfg.weight
        n_entities, n_features, _ = policy.encoder.weight.shape
        self.module = nn.ModuleDict({"predictor": QueryDecoder(policy.d_model, cfg.d_model, n_features, horizon * n_entities,
                                                               cfg.n_layers, cfg.n_heads)})

    def loss(self, policy: ActPolicy, z: torch.Tensor, batch: PushBatch) -> tuple[torch.Tensor, dict[str, float]]:
        target = batch.future.flatten(1, 2)  # [B, T*E, F], time-major like the encoder's tokens
        pred = self.module["predictor"](z)  # [B, T*E, F]
        loss = latent_loss(pred, target, self.cfg.loss)
        return loss, {"aux_loss": loss.item(), "pred_std": token_std(pred)}


@AUX_OBJECTIVES.register("raw", RawFutureConfig)
def build_raw(cfg: RawFutureConfig, policy: ActPolicy, horizon: int) -> Objective:
    return RawFuture(cfg, policy, horizon)


def build_objective(cfg: ComponentConfig, policy: ActPolicy, horizon: int) -> Objective:
    return AUX_OBJECTIVES.get(cfg.name).build(cfg, policy, horizon)
