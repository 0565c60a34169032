"""Token layouts: where each of a modality's tokens sits.  Positional encodings and mask samplers read the
layout, never the modality, so a new modality is a tokenizer that describes its tokens with one.

    axes    names of the coordinate axes: ("row", "col") for image patches, ("freq", "time") for spectrogram
            patches, ("feature",) for table columns; later ("channel", "time"), ("region", "time"),
            ("t", "row", "col") for video tubelets, ("x", "y", "z") for point-cloud groups
    coords  [N, A] float, shared by every sample of a batch, or [B, N, A] per sample (point-cloud centres):
            token n's coordinate on each axis (integer-valued on a grid)
    shape   the extent of each axis when the N tokens are a full grid in row-major order (token index =
            ravel of its integer coords, e.g. r * W + c); None when they are not a grid
    attrs   other named per-token tensors ([N, k] or [B, N, k]) a positional encoding or sampler may read:
            electrode positions of EEG channels, connectivity gradients of fMRI regions, modality ids

Token indices in masks ([B, Nc] context, [B, M, Nt] targets) index the N tokens of the layout.  Tokens a
tokenizer adds that are not data ([REG] tokens) are not in the layout: no sampler can pick them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True, eq=False)
class Layout:
    axes: tuple[str, ...]
    coords: torch.Tensor
    shape: tuple[int, ...] | None = None
    attrs: Mapping[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.coords.dim() not in (2, 3) or self.coords.shape[-1] != len(self.axes):
            raise ValueError(f"coords must be [N, {len(self.axes)}] or [B, N, {len(self.axes)}], got {tuple(self.coords.shape)}")
        if self.shape is not None and (len(self.shape) != len(self.axes) or math.prod(self.shape) != self.n_tokens):
            raise ValueError(f"grid shape {self.shape} does not hold the {self.n_tokens} tokens on axes {self.axes}")

    @classmethod
    def grid(cls, axes: tuple[str, ...], shape: tuple[int, ...], **attrs: torch.Tensor) -> Layout:
        """A full row-major grid: token i sits at the integer coords of its multi-index in `shape`."""
        ranges = [torch.arange(n, dtype=torch.float32) for n in shape]
        coords = torch.stack([c.flatten() for c in torch.meshgrid(*ranges, indexing="ij")], dim=1)  # [N, A]
        return cls(tuple(axes), coords, tuple(shape), dict(attrs))

    @property
    def n_tokens(self) -> int:
        return self.coords.shape[-2]

    @property
    def per_sample(self) -> bool:
        return self.coords.dim() == 3

    def axis(self, name: str) -> int:
        """Position of axis `name` in `axes` (a clear error when the layout has no such axis)."""
        if name not in self.axes:
            raise ValueError(f"the token layout has axes {self.axes}, not '{name}'")
        return self.axes.index(name)

    def grid_shape(self, dims: int, user: str) -> tuple[int, ...]:
        """The grid extent, for a component that needs a `dims`-D grid of tokens (else a clear error)."""
        if self.shape is None or len(self.shape) != dims:
            raise ValueError(f"{user} needs a {dims}-D grid of tokens; the layout has axes {self.axes}, grid {self.shape}")
        return self.shape

    def to(self, device: torch.device) -> Layout:
        attrs = {k: v.to(device, non_blocking=True) for k, v in self.attrs.items()}
        return Layout(self.axes, self.coords.to(device, non_blocking=True), self.shape, attrs)
