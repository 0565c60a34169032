"""Mask samplers on a 2-D grid of tokens (image patches; time x frequency patches of a spectrogram).

A grid of H x W tokens (the layout's `shape`) is indexed row-major: token (r, c) has index r * W + c.

    multiblock  (I-JEPA, Assran et al. 2023) n_targets rectangular target blocks of scale `target_scale` (a
                fraction of the grid's tokens) and aspect ratio height/width in `target_aspect`; one context
                block of scale `context_scale` with the grid's own aspect (a square on a square grid), from
                which the union of the targets is removed.  Block sizes are drawn once per batch (so every
                sample has the same shapes), positions per sample.  A sample whose context keeps fewer than
                `min_keep` tokens redraws its positions.  Removing the targets leaves different context
                counts per sample: every row is cut to the batch minimum by a random subset, so that the
                batch is one [B, Nc] tensor.
    block       one rectangular target block (scale / aspect drawn per batch, position per sample); the context
                is its complement.  A block over half the grid in both directions always covers the centre
                (wherever it is placed), so a scale whose every block is that large is refused.
    strips      (A-JEPA's time-frequency masking, arXiv 2311.15830) n_targets full-extent strips along one axis
                of the grid: a time strip covers `width` time steps over every frequency, a frequency band
                `width` frequencies over all time.  The axis is drawn per batch from `axes`, the strips'
                positions per sample from the non-overlapping slots of `width` along it; the context is the
                complement of the strips (same size in every row: no truncation).

Block sizes: area a = scale * H * W and aspect r = height / width (r drawn log-uniformly) give height
round(sqrt(a * r)) and width round(sqrt(a / r)), clipped to the grid; so scale and aspect hold up to
rounding, which is coarse on a small grid (e.g. 4 x 4).
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from baselines.ssl.layout import Layout
from baselines.ssl.masks import MASKS, Masks, numpy_rng, random_subset, true_indices
from baselines.tasks.ranges import check_interval
from harness.registry import ComponentConfig

MAX_TRIES = 100  # redraws of one sample's block positions before giving up on the batch's block sizes
MAX_SIZE_TRIES = 20  # redraws of the batch's block sizes before the sampler raises


def block_size(
    rng: np.random.Generator, grid: tuple[int, int], scale: tuple[float, float], aspect: tuple[float, float]
) -> tuple[int, int]:
    """(height, width) of a block: scale uniform in `scale`, aspect log-uniform in `aspect`, then rounded."""
    H, W = grid
    area = rng.uniform(*scale) * H * W
    ratio = math.exp(rng.uniform(math.log(aspect[0]), math.log(aspect[1])))
    height = min(max(round(math.sqrt(area * ratio)), 1), H)
    width = min(max(round(math.sqrt(area / ratio)), 1), W)
    return height, width


def place_blocks(rng: np.random.Generator, grid: tuple[int, int], size: tuple[int, int], shape: tuple[int, ...]) -> np.ndarray:
    """Blocks of `size` at uniformly random positions: boolean [*shape, H, W]."""
    (H, W), (height, width) = grid, size
    top = rng.integers(0, H - height + 1, size=shape)[..., None]  # [*shape, 1]
    left = rng.integers(0, W - width + 1, size=shape)[..., None]
    rows = (np.arange(H) >= top) & (np.arange(H) < top + height)  # [*shape, H]
    cols = (np.arange(W) >= left) & (np.arange(W) < left + width)  # [*shape, W]
    return rows[..., :, None] & cols[..., None, :]


def always_covers_centre(grid: tuple[int, int], scale: float, aspect: tuple[float, float]) -> bool:
    """True when every block of the smallest area `scale` (any aspect in the range) spans more than half the
    grid in both directions: placed anywhere, it then covers the central tokens."""
    ratios = np.exp(np.linspace(math.log(aspect[0]), math.log(aspect[1]), 64))
    area = scale * grid[0] * grid[1]
    sizes = [(min(max(round(math.sqrt(area * r)), 1), grid[0]), min(max(round(math.sqrt(area / r)), 1), grid[1])) for r in ratios]
    return all(2 * h > grid[0] and 2 * w > grid[1] for h, w in sizes)


# ----------------------------------------------------------------------------------------------
# multiblock


class MultiBlockMaskConfig(ComponentConfig):
    name: Literal["multiblock"] = "multiblock"
    n_targets: int = Field(default=4, ge=1)
    target_scale: tuple[float, float] = (0.15, 0.2)  # fraction of the tokens in one target block
    target_aspect: tuple[float, float] = (0.75, 1.5)  # height / width of a target block
    context_scale: tuple[float, float] = (0.85, 1.0)  # fraction of the tokens in the context block
    min_keep: int = Field(default=4, ge=1)  # fewest context tokens left after removing the targets

    @model_validator(mode="after")
    def _check(self) -> MultiBlockMaskConfig:
        check_interval("target_scale", self.target_scale, 0, 1.0)
        check_interval("target_aspect", self.target_aspect, 0)
        check_interval("context_scale", self.context_scale, 0, 1.0)
        return self


class MultiBlockSampler:
    overlap = False

    def __init__(self, cfg: MultiBlockMaskConfig, layout: Layout) -> None:
        self.cfg, self.grid = cfg, layout.grid_shape(2, "mask multiblock")
        H, W = self.grid
        if cfg.min_keep > H * W:
            raise ValueError(f"min_keep={cfg.min_keep} exceeds the {H * W} tokens of a {H}x{W} grid")

    def __call__(self, layout: Layout, batch_size: int, generator: torch.Generator, progress: float) -> Masks:
        cfg, (H, W) = self.cfg, self.grid
        rng = numpy_rng(generator)
        for _ in range(MAX_SIZE_TRIES):
            target_size = block_size(rng, self.grid, cfg.target_scale, cfg.target_aspect)
            context_size = block_size(rng, self.grid, cfg.context_scale, (H / W, H / W))
            drawn = self._positions(rng, batch_size, target_size, context_size)
            if drawn is not None:
                break
        else:
            raise RuntimeError(
                f"multiblock masks on a {H}x{W} grid: no draw kept min_keep={cfg.min_keep} context tokens "
                f"({MAX_SIZE_TRIES} block sizes x {MAX_TRIES} positions); lower min_keep, n_targets or target_scale"
            )
        targets, context = drawn  # [B, M, N], [B, N] boolean
        keep = int(context.sum(axis=1).min())  # every row cut to the batch minimum (random subset)
        return Masks(context=random_subset(rng, context, keep), targets=true_indices(targets, target_size[0] * target_size[1]))

    def _positions(
        self, rng: np.random.Generator, batch_size: int, target_size: tuple[int, int], context_size: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Per-sample block positions, redrawing the samples whose context is too small: (targets [B, M, N],
        context [B, N]) boolean, or None if some sample still fails after MAX_TRIES."""
        cfg, M, N = self.cfg, self.cfg.n_targets, self.grid[0] * self.grid[1]
        targets = np.zeros((batch_size, M, N), dtype=bool)
        context = np.zeros((batch_size, N), dtype=bool)
        todo = np.arange(batch_size)
        for _ in range(MAX_TRIES):
            t = place_blocks(rng, self.grid, target_size, (len(todo), M)).reshape(len(todo), M, N)
            c = place_blocks(rng, self.grid, context_size, (len(todo),)).reshape(len(todo), N) & ~t.any(axis=1)
            targets[todo], context[todo] = t, c
            todo = todo[c.sum(axis=1) < cfg.min_keep]
            if len(todo) == 0:
                return targets, context
        return None


MASKS.register("multiblock", MultiBlockMaskConfig)(MultiBlockSampler)


# ----------------------------------------------------------------------------------------------
# one block


class BlockMaskConfig(ComponentConfig):
    name: Literal["block"] = "block"
    scale: tuple[float, float] = (0.2, 0.35)  # fraction of the tokens in the target block
    aspect: tuple[float, float] = (0.75, 1.5)  # height / width of the target block

    @model_validator(mode="after")
    def _check(self) -> BlockMaskConfig:
        check_interval("scale", self.scale, 0, 1.0)
        check_interval("aspect", self.aspect, 0)
        return self


class BlockSampler:
    overlap = False

    def __init__(self, cfg: BlockMaskConfig, layout: Layout) -> None:
        self.cfg, self.grid = cfg, layout.grid_shape(2, "mask block")
        if always_covers_centre(self.grid, cfg.scale[0], cfg.aspect):
            raise ValueError(f"mask block: every block of scale >= {cfg.scale[0]} is over half the {self.grid} grid in "
                             f"both directions, so the central tokens would always be masked, never in the context; "
                             f"lower scale")

    def __call__(self, layout: Layout, batch_size: int, generator: torch.Generator, progress: float) -> Masks:
        (H, W), N = self.grid, self.grid[0] * self.grid[1]
        rng = numpy_rng(generator)
        for _ in range(MAX_SIZE_TRIES):
            height, width = block_size(rng, self.grid, self.cfg.scale, self.cfg.aspect)
            if height * width < N:  # keep at least one context token
                break
        else:
            raise RuntimeError(f"block masks on a {H}x{W} grid: every drawn block covers the whole grid; lower scale")
        block = place_blocks(rng, self.grid, (height, width), (batch_size,)).reshape(batch_size, N)  # [B, N]
        n_target = height * width
        return Masks(
            context=true_indices(~block, N - n_target),  # [B, N - Nt]
            targets=true_indices(block, n_target).unsqueeze(1),  # [B, 1, Nt]
        )


MASKS.register("block", BlockMaskConfig)(BlockSampler)


# ----------------------------------------------------------------------------------------------
# strips along one axis


class StripsMaskConfig(ComponentConfig):
    STATS: ClassVar[tuple[str, ...]] = ("mask/strip_dim",)
    name: Literal["strips"] = "strips"
    axes: tuple[str, ...] = ("time", "freq")  # the axis of a batch's strips is drawn uniformly from these
    n_targets: int = Field(default=2, ge=1)  # strips per sample (distinct, non-overlapping)
    width: int = Field(default=1, ge=1)  # extent of one strip along its axis, in tokens


class StripsSampler:
    overlap = False

    def __init__(self, cfg: StripsMaskConfig, layout: Layout) -> None:
        self.cfg, self.grid = cfg, layout.grid_shape(2, "mask strips")
        if not cfg.axes:
            raise ValueError("mask strips needs at least one axis")
        self.dims = [layout.axis(a) for a in cfg.axes]  # grid dimension of each axis
        for a, d in zip(cfg.axes, self.dims):
            slots = self.grid[d] // cfg.width
            if cfg.n_targets >= slots:  # at least one slot must stay in the context
                raise ValueError(f"mask strips: {cfg.n_targets} strips of width {cfg.width} leave no context on axis "
                                 f"'{a}' of {self.grid[d]} tokens")

    def __call__(self, layout: Layout, batch_size: int, generator: torch.Generator, progress: float) -> Masks:
        cfg, (H, W) = self.cfg, self.grid
        rng = numpy_rng(generator)
        dim = self.dims[int(rng.integers(len(self.dims)))]  # 0: strips span whole rows, 1: whole columns
        length, w = self.grid[dim], cfg.width
        offset = rng.integers(0, length - (length // w) * w + 1, size=(batch_size, 1))  # slot grid shift [B, 1]
        slots = np.argsort(rng.random((batch_size, length // w)), axis=1)[:, : cfg.n_targets]  # [B, M] distinct
        starts = offset + slots * w  # [B, M]
        line = np.arange(length)
        on = (line >= starts[..., None]) & (line < starts[..., None] + w)  # [B, M, length]
        strips = on[..., :, None].repeat(W, -1) if dim == 0 else on[..., None, :].repeat(H, -2)  # [B, M, H, W]
        strips = strips.reshape(batch_size, cfg.n_targets, H * W)
        n_target = w * (W if dim == 0 else H)
        union = strips.any(axis=1)  # [B, N]
        return Masks(
            context=true_indices(~union, H * W - cfg.n_targets * n_target),
            targets=true_indices(strips, n_target),
            stats={"mask/strip_dim": float(dim)},  # 0: the strips are whole rows of the grid, 1: whole columns
        )


MASKS.register("strips", StripsMaskConfig)(StripsSampler)
