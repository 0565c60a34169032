"""Positional encodings of tokens, read from their layout (baselines/ssl/layout.py).

    PositionalEncoding(layout) -> [N, width] (a layout shared by the batch) or [B, N, width] (per sample)

Registered in POS_ENCODINGS; a builder gets (cfg, width, layout), the layout being the tokenizer's (for a
per-sample layout, a representative one).  The encoder adds the encoding to the token embeddings once; the
JEPA predictor and the MAE decoder build their own at their own width from the same config, so that their
mask tokens carry the positions of the tokens they stand for.

    sincos   fixed sin-cos of each layout axis (MAE / I-JEPA 2-D sin-cos for ("row", "col"); T-JEPA's
             feature-index code for ("feature",) with base 100): the width is split equally over the
             axes, the first width/A features encode the first axis, and so on
    learned  a trainable table, one vector per token index (N(0, std) init); a layout shared by the batch
    none     zeros: no position at all

A new code (electrode locations, connectivity gradients, an MLP of continuous coordinates) is one class
and one `@POS_ENCODINGS.register`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from baselines.ssl.layout import Layout
from harness.registry import ComponentConfig, Registry
from harness.train.optim import no_weight_decay


def sincos_1d(positions: torch.Tensor, dim: int, base: float = 10000.0) -> torch.Tensor:
    """positions [T] float -> [T, dim]: sin(pos * w_i) for the first half, cos for the second,
    w_i = base^(-i / (dim/2)), i = 0 .. dim/2 - 1."""
    omega = 1.0 / base ** (torch.arange(dim // 2, dtype=torch.float64, device=positions.device) / (dim / 2))  # [dim/2]
    angles = positions.to(torch.float64)[:, None] * omega[None, :]  # [T, dim/2]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()  # [T, dim]


def sincos(coords: torch.Tensor, dim: int, base: float = 10000.0) -> torch.Tensor:
    """coords [..., N, A] -> [..., N, dim]: sincos_1d of each axis over dim / A features, axes in order."""
    per_axis = dim // coords.shape[-1]
    flat = coords.reshape(-1, coords.shape[-1])  # [(B) N, A]
    codes = [sincos_1d(flat[:, a], per_axis, base) for a in range(coords.shape[-1])]
    return torch.cat(codes, dim=1).view(*coords.shape[:-1], dim)  # [..., N, dim]


def sincos_2d(grid: int, dim: int) -> torch.Tensor:
    """Fixed 2-D sin-cos embedding of a grid x grid patch grid (MAE / I-JEPA): [grid*grid, dim], row-major;
    the first dim/2 features encode the row, the last dim/2 the column."""
    return sincos(Layout.grid(("row", "col"), (grid, grid)).coords, dim)


def positions_at(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Encodings of the tokens `index` [B, K]: table [N, d] (shared) or [B, N, d] (per sample) -> [B, K, d]."""
    if table.dim() == 2:
        return table[index]  # [B, K, d]
    return torch.gather(table, 1, index[..., None].expand(-1, -1, table.shape[-1]))  # [B, K, d]


class PositionalEncoding(nn.Module):
    """Base class: what every encoding returns for a layout.  `init_embedding()` re-initializes a trainable
    encoding after its owner's GPT-2 init of every linear layer (center_mlp: PyTorch's default init)."""

    def forward(self, layout: Layout) -> torch.Tensor:
        raise NotImplementedError

    def init_embedding(self) -> None:
        pass


PositionalBuilder = Callable[[ComponentConfig, int, Layout], PositionalEncoding]
POS_ENCODINGS: Registry[PositionalBuilder] = Registry("positional encoding")


class SinCosConfig(ComponentConfig):
    name: Literal["sincos"] = "sincos"
    base: float = Field(default=10000.0, gt=1.0)  # wavelengths from 2 pi to 2 pi * base


class SinCos(PositionalEncoding):
    def __init__(self, cfg: SinCosConfig, width: int, layout: Layout) -> None:
        super().__init__()
        n_axes = len(layout.axes)
        if width % (2 * n_axes):
            raise ValueError(f"sincos positions of the {n_axes} axes {layout.axes} need a width divisible by "
                             f"{2 * n_axes}, got {width}")
        self.width, self.base = width, cfg.base
        table = torch.empty(0) if layout.per_sample else sincos(layout.coords, width, cfg.base)  # [N, width]
        self.register_buffer("table", table, persistent=False)  # fixed

    def forward(self, layout: Layout) -> torch.Tensor:
        if layout.per_sample:
            return sincos(layout.coords, self.width, self.base)  # [B, N, width]
        return self.table  # [N, width]


class LearnedConfig(ComponentConfig):
    name: Literal["learned"] = "learned"
    std: float = Field(default=0.02, gt=0.0)  # init scale


class Learned(PositionalEncoding):
    def __init__(self, cfg: LearnedConfig, width: int, layout: Layout) -> None:
        super().__init__()
        if layout.per_sample:
            raise ValueError("learned positions need a layout shared by the batch (one vector per token index)")
        self.table = nn.Parameter(torch.randn(layout.n_tokens, width) * cfg.std)  # [N, width]
        no_weight_decay(self.table)  # an embedding, not a weight matrix

    def forward(self, layout: Layout) -> torch.Tensor:
        return self.table  # [N, width]


class NoPositionConfig(ComponentConfig):
    name: Literal["none"] = "none"


class NoPosition(PositionalEncoding):
    def __init__(self, cfg: NoPositionConfig, width: int, layout: Layout) -> None:
        super().__init__()
        self.width = width

    def forward(self, layout: Layout) -> torch.Tensor:
        return layout.coords.new_zeros(*layout.coords.shape[:-1], self.width)  # [(B,) N, width]


POS_ENCODINGS.register("sincos", SinCosConfig)(SinCos)
POS_ENCODINGS.register("learned", LearnedConfig)(Learned)
POS_ENCODINGS.register("none", NoPositionConfig)(NoPosition)


def build_positional(cfg: ComponentConfig, width: int, layout: Layout) -> PositionalEncoding:
    return POS_ENCODINGS.get(cfg.name).build(cfg, width, layout)
