"""Point-cloud tokens (Point-MAE / Point-JEPA): farthest-point-sampled centers, their k nearest points, a
mini-PointNet per group; and the positional encoding of the centers.

    farthest_points(points [B, P, 3], n)   -> centers [B, n, 3]: FPS from point 0 (the clouds' points are in
                                              random order; Point-JEPA starts at a random point), each next
                                              center the point farthest from those chosen
    knn_groups(points, centers, k)          -> [B, n, k, 3]: each center's k nearest points, relative to it

Tokenizer `point_groups` (TOKENIZERS): inputs [B, P, 3].  `layout_of` runs FPS in the data stream and gives a
per-sample layout: axes ("x", "y", "z"), coords = the centers [B, N, 3] (mask samplers order them, the
positional encoding reads them).  `forward` groups the points around the layout's centers and embeds each
group with a mini-PointNet (Point-MAE's two stages, per point: Linear 3 -> c1 -> c2, max over the group,
the max concatenated to every point, Linear 2 c2 -> c3 -> D, max over the group; LayerNorm + GELU between the
linears where Point-MAE has BatchNorm + ReLU, because the JEPA target is an EMA copy whose BatchNorm running
statistics would never be updated).  `content` = the group's relative coordinates [B, N, k * 3] (what MAE
reconstructs; `chamfer` compares them as point sets).

Positional encoding `center_mlp` (POS_ENCODINGS): Linear(3, hidden) -> GELU -> Linear(hidden, width) of
the centers, [B, N, width] (Point-JEPA adds it at every layer; the TokenEncoder adds it once, at the input).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from baselines.ssl.layout import Layout
from baselines.ssl.positions import POS_ENCODINGS, PositionalEncoding
from baselines.ssl.tokenizers import TOKENIZERS, Tokenizer, task_input
from baselines.tasks.labeled import LabeledTask, PointCloudInput
from harness.registry import ComponentConfig

AXES = ("x", "y", "z")


def farthest_points(points: torch.Tensor, n: int) -> torch.Tensor:
    """points [B, P, 3] -> centers [B, n, 3] by farthest-point sampling from point 0 (module docstring)."""
    B, P, _ = points.shape
    chosen = torch.zeros(B, n, dtype=torch.long, device=points.device)  # [B, n]; center 0 is point 0
    nearest = torch.full((B, P), float("inf"), device=points.device)  # [B, P]: distance to the chosen set
    rows = torch.arange(B, device=points.device)
    for i in range(1, n):
        last = points[rows, chosen[:, i - 1]]  # [B, 3]
        nearest = torch.minimum(nearest, (points - last[:, None, :]).pow(2).sum(-1))  # [B, P]
        chosen[:, i] = nearest.argmax(dim=1)
    return torch.gather(points, 1, chosen[..., None].expand(-1, -1, 3))  # [B, n, 3]


def knn_groups(points: torch.Tensor, centers: torch.Tensor, k: int) -> torch.Tensor:
    """points [B, P, 3], centers [B, N, 3] -> the k nearest points of each center minus it, [B, N, k, 3]."""
    B, N, _ = centers.shape
    dist = torch.cdist(centers, points, compute_mode="donot_use_mm_for_euclid_dist")  # [B, N, P], exact
    idx = dist.topk(k, dim=-1, largest=False).indices  # [B, N, k], nearest first
    groups = torch.gather(points, 1, idx.reshape(B, N * k, 1).expand(-1, -1, 3)).view(B, N, k, 3)  # [B, N, k, 3]
    return groups - centers[:, :, None, :]


class PointGroupsConfig(ComponentConfig):
    name: Literal["point_groups"] = "point_groups"
    n_groups: int = Field(default=32, ge=2)  # N tokens (centers)
    group_size: int = Field(default=16, ge=1)  # k points per group
    widths: tuple[int, int, int] = (32, 64, 64)  # c1, c2, c3 of the mini-PointNet (Point-JEPA: 128, 256, 512)

    @model_validator(mode="after")
    def _widths(self) -> PointGroupsConfig:
        if min(self.widths) < 1:
            raise ValueError(f"widths must be positive, got {self.widths}")
        return self


class MiniPointNet(nn.Module):
    """groups [..., k, 3] -> [..., D] (module docstring)."""

    def __init__(self, widths: tuple[int, int, int], d_model: int) -> None:
        super().__init__()
        c1, c2, c3 = widths
        self.first = nn.Sequential(nn.Linear(3, c1), nn.LayerNorm(c1), nn.GELU(), nn.Linear(c1, c2))
        self.second = nn.Sequential(nn.Linear(2 * c2, c3), nn.LayerNorm(c3), nn.GELU(), nn.Linear(c3, d_model))

    def forward(self, groups: torch.Tensor) -> torch.Tensor:
        f = self.first(groups)  # [..., k, c2]
        glob = f.amax(dim=-2, keepdim=True).expand_as(f)  # [..., k, c2]
        return self.second(torch.cat([glob, f], dim=-1)).amax(dim=-2)  # [..., D]

    def reset(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.LayerNorm):
                m.reset_parameters()


class PointGroups(Tokenizer):
    def __init__(self, cfg: PointGroupsConfig, spec: PointCloudInput, d_model: int) -> None:
        super().__init__()
        if cfg.n_groups > spec.n_points or cfg.group_size > spec.n_points:
            raise ValueError(f"point_groups: n_groups={cfg.n_groups} and group_size={cfg.group_size} must not exceed "
                             f"the {spec.n_points} points of a cloud")
        self.n_groups, self.k = cfg.n_groups, cfg.group_size
        self.layout = Layout(AXES, torch.zeros(1, cfg.n_groups, 3))  # representative: per-sample centers
        self.content_dim = 3 * cfg.group_size
        self.embed = MiniPointNet(cfg.widths, d_model)

    def layout_of(self, inputs: torch.Tensor) -> Layout:
        return Layout(AXES, farthest_points(inputs, self.n_groups))  # coords [B, N, 3]

    def forward(self, inputs: torch.Tensor, layout: Layout) -> torch.Tensor:
        return self.embed(knn_groups(inputs, layout.coords, self.k))  # [B, N, D]

    def content(self, inputs: torch.Tensor, layout: Layout) -> torch.Tensor:
        return knn_groups(inputs, layout.coords, self.k).flatten(2)  # [B, N, k * 3]

    def init_embedding(self) -> None:
        self.embed.reset()  # PyTorch's default init, not the encoder's N(0, 0.02) for transformer weights


@TOKENIZERS.register("point_groups", PointGroupsConfig)
def build_point_groups(cfg: PointGroupsConfig, task: LabeledTask, d_model: int) -> PointGroups:
    return PointGroups(cfg, task_input(task, PointCloudInput, "tokenizer point_groups", "point clouds"), d_model)


# ----------------------------------------------------------------------------------------------
# positions: an MLP of the centers


class CenterMlpConfig(ComponentConfig):
    name: Literal["center_mlp"] = "center_mlp"
    hidden: int = Field(default=64, ge=1)  # Point-JEPA: 128


class CenterMlp(PositionalEncoding):
    def __init__(self, cfg: CenterMlpConfig, width: int, layout: Layout) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(layout.coords.shape[-1], cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, width))

    def forward(self, layout: Layout) -> torch.Tensor:
        return self.mlp(layout.coords)  # [B, N, width] (or [N, width] for a shared layout)

    def init_embedding(self) -> None:
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                m.reset_parameters()


POS_ENCODINGS.register("center_mlp", CenterMlpConfig)(CenterMlp)
