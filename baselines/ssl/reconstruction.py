"""Reconstruction losses of MAE: how the decoder's output for a masked token is compared with its content.

    loss(pred [B, M, Nt, P], target [B, M, Nt, P]) -> scalar, over the masked tokens only

Registered in RECONSTRUCTIONS (MAE's `reconstruction` field):
    mse      mean squared error over every value (He et al. 2022; with MAE's norm_pix_loss the target is the
             per-token normalized content)
    chamfer  (Point-MAE) each token's content read as a set of P / point_dim points (a point-cloud group's
             relative coordinates): the L2 Chamfer distance, the mean squared distance from each predicted
             point to its nearest true point plus the same from each true point to its nearest predicted
             one, averaged over the tokens.  Order-free: a permutation of the group's points costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from harness.registry import ComponentConfig, Registry

ReconstructionLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
RECONSTRUCTIONS: Registry[Callable[[ComponentConfig], ReconstructionLoss]] = Registry("reconstruction")


class MseReconstructionConfig(ComponentConfig):
    name: Literal["mse"] = "mse"


@RECONSTRUCTIONS.register("mse", MseReconstructionConfig)
def build_mse(cfg: MseReconstructionConfig) -> ReconstructionLoss:
    return F.mse_loss


class ChamferConfig(ComponentConfig):
    name: Literal["chamfer"] = "chamfer"
    point_dim: int = Field(default=3, ge=1)  # coordinates per point


def chamfer_l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """pred [..., K, A], target [..., K', A] -> [...]: the L2 Chamfer distance of the two point sets."""
    d = torch.cdist(pred, target).pow(2)  # [..., K, K']
    return d.amin(dim=-1).mean(dim=-1) + d.amin(dim=-2).mean(dim=-1)


@RECONSTRUCTIONS.register("chamfer", ChamferConfig)
def build_chamfer(cfg: ChamferConfig) -> ReconstructionLoss:
    def loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape[-1] % cfg.point_dim:
            raise ValueError(f"chamfer: a token's {pred.shape[-1]} values are not points of {cfg.point_dim} coordinates")
        points = (*pred.shape[:-1], -1, cfg.point_dim)
        return chamfer_l2(pred.reshape(points), target.reshape(points)).mean()  # [B, M, Nt] -> scalar

    return loss


def reconstruction_loss(cfg: ComponentConfig) -> ReconstructionLoss:
    return RECONSTRUCTIONS.get(cfg.name).build(cfg)
