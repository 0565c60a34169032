"""Mask samplers for masked-image pre-training: which patches the context encoder sees and which it predicts.

Samplers run in the data stream (`collate_masks`, from `Method.collate`), on CPU, not in the model.  Patches
are indexed row-major on a `grid x grid` patch grid: patch (row r, column c) has index r * grid + c.

    multiblock  (I-JEPA, Assran et al. 2023) n_targets rectangular target blocks of scale `target_scale` (a
                fraction of the grid's patches) and aspect ratio height/width in `target_aspect`; one context
                block of scale `context_scale` and aspect 1, from which the union of the targets is removed.
                Block sizes are drawn once per batch (so every image has the same shapes), positions per image.
                An image whose context keeps fewer than `min_keep` patches redraws its positions.  Removing the
                targets leaves different context counts per image: every row is cut to the batch minimum by a
                random subset, so that the batch is one [B, Nc] tensor.
    random      (MAE, He et al. 2022) a uniformly random subset of round(ratio * N) patches is masked: the
                targets (one block [B, 1, n_mask]); the others are the context [B, N - n_mask].
    block       one rectangular target block (scale / aspect drawn per batch, position per image); the context
                is its complement.

Block sizes: area a = scale * N and aspect r = height / width (r drawn log-uniformly) give height
round(sqrt(a * r)) and width round(sqrt(a / r)), clipped to [1, grid]; so scale and aspect hold up to
rounding, which is coarse on a small grid (e.g. 4 x 4).  All randomness comes from the torch generator
passed to the sampler (one integer from it seeds a numpy generator): deterministic per generator state.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal, Protocol, Union

import numpy as np
import torch
from pydantic import Field, model_validator

from baselines.tasks.images import ImageBatch
from baselines.tasks.ranges import check_interval
from harness.registry import ComponentConfig, Registry

MAX_TRIES = 100  # redraws of one image's block positions before giving up on the batch's block sizes
MAX_SIZE_TRIES = 20  # redraws of the batch's block sizes before the sampler raises


@dataclass
class Masks:
    """context: [B, Nc] long, patch indices visible to the context encoder (sorted per row);
    targets: [B, M, Nt] long, M target blocks per image, the patch indices to predict (sorted per block)."""

    context: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return self.context.shape[0]

    def to(self, device: torch.device) -> Masks:
        return Masks(self.context.to(device, non_blocking=True), self.targets.to(device, non_blocking=True))

    def slice(self, start: int, stop: int) -> Masks:
        return Masks(self.context[start:stop], self.targets[start:stop])


@dataclass
class MaskedImageBatch:
    """images: [B, C, H, W]; labels: [B]; masks: the patches each image shows and hides."""

    images: torch.Tensor
    labels: torch.Tensor
    masks: Masks

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device: torch.device) -> MaskedImageBatch:
        return MaskedImageBatch(
            self.images.to(device, non_blocking=True), self.labels.to(device, non_blocking=True), self.masks.to(device)
        )

    def slice(self, start: int, stop: int) -> MaskedImageBatch:
        return MaskedImageBatch(self.images[start:stop], self.labels[start:stop], self.masks.slice(start, stop))


class MaskSampler(Protocol):
    def __call__(self, batch_size: int, generator: torch.Generator) -> Masks: ...


MaskBuilder = Callable[[ComponentConfig, int], MaskSampler]
MASKS: Registry[MaskBuilder] = Registry("mask")


# ----------------------------------------------------------------------------------------------
# configs


class MultiBlockMaskConfig(ComponentConfig):
    name: Literal["multiblock"] = "multiblock"
    n_targets: int = Field(default=4, ge=1)
    target_scale: tuple[float, float] = (0.15, 0.2)  # fraction of the patches in one target block
    target_aspect: tuple[float, float] = (0.75, 1.5)  # height / width of a target block
    context_scale: tuple[float, float] = (0.85, 1.0)  # fraction of the patches in the context block (aspect 1)
    min_keep: int = Field(default=4, ge=1)  # fewest context patches left after removing the targets

    @model_validator(mode="after")
    def _check(self) -> MultiBlockMaskConfig:
        check_interval("target_scale", self.target_scale, 0, 1.0)
        check_interval("target_aspect", self.target_aspect, 0)
        check_interval("context_scale", self.context_scale, 0, 1.0)
        return self


class RandomMaskConfig(ComponentConfig):
    name: Literal["random"] = "random"
    ratio: float = Field(default=0.75, gt=0.0, lt=1.0)  # fraction of the patches masked (the targets)


class BlockMaskConfig(ComponentConfig):
    name: Literal["block"] = "block"
    scale: tuple[float, float] = (0.4, 0.6)  # fraction of the patches in the target block
    aspect: tuple[float, float] = (0.75, 1.5)  # height / width of the target block

    @model_validator(mode="after")
    def _check(self) -> BlockMaskConfig:
        check_interval("scale", self.scale, 0, 1.0)
        check_interval("aspect", self.aspect, 0)
        return self


MaskConfig = Annotated[Union[MultiBlockMaskConfig, RandomMaskConfig, BlockMaskConfig], Field(discriminator="name")]


def build_mask_sampler(cfg: MaskConfig, grid: int) -> MaskSampler:
    """The sampler of `cfg` for a grid x grid patch grid."""
    if grid < 1:
        raise ValueError(f"the patch grid must be at least 1 x 1, got grid={grid}")
    return MASKS.get(cfg.name).build(cfg, grid)


def collate_masks(batch: ImageBatch, sampler: MaskSampler, generator: torch.Generator) -> MaskedImageBatch:
    """The batch with masks drawn for each of its images."""
    return MaskedImageBatch(batch.images, batch.labels, sampler(len(batch), generator))


# ----------------------------------------------------------------------------------------------
# block geometry (numpy, on boolean [.., grid, grid] masks)


def _numpy_rng(generator: torch.Generator) -> np.random.Generator:
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator).item()))


def block_size(
    rng: np.random.Generator, grid: int, scale: tuple[float, float], aspect: tuple[float, float]
) -> tuple[int, int]:
    """(height, width) of a block: scale uniform in `scale`, aspect log-uniform in `aspect`, then rounded."""
    area = rng.uniform(*scale) * grid * grid
    ratio = math.exp(rng.uniform(math.log(aspect[0]), math.log(aspect[1])))
    height = min(max(round(math.sqrt(area * ratio)), 1), grid)
    width = min(max(round(math.sqrt(area / ratio)), 1), grid)
    return height, width


def place_blocks(rng: np.random.Generator, grid: int, size: tuple[int, int], shape: tuple[int, ...]) -> np.ndarray:
    """Blocks of `size` at uniformly random positions: boolean [*shape, grid, grid]."""
    height, width = size
    top = rng.integers(0, grid - height + 1, size=shape)[..., None]  # [*shape, 1]
    left = rng.integers(0, grid - width + 1, size=shape)[..., None]
    line = np.arange(grid)
    rows = (line >= top) & (line < top + height)  # [*shape, grid]
    cols = (line >= left) & (line < left + width)
    return rows[..., :, None] & cols[..., None, :]


def true_indices(mask: np.ndarray, count: int) -> torch.Tensor:
    """Sorted flat indices of the True entries of each row of mask [..., N] (each row has `count` of them)."""
    order = np.argsort(~mask, axis=-1, kind="stable")[..., :count]  # True entries first, in index order
    return torch.from_numpy(np.ascontiguousarray(order)).long()


# ----------------------------------------------------------------------------------------------
# samplers


class MultiBlockSampler:
    """I-JEPA's multi-block masks (module docstring)."""

    def __init__(self, cfg: MultiBlockMaskConfig, grid: int) -> None:
        if cfg.min_keep > grid * grid:
            raise ValueError(f"min_keep={cfg.min_keep} exceeds the {grid * grid} patches of a {grid}x{grid} grid")
        self.cfg, self.grid = cfg, grid

    def __call__(self, batch_size: int, generator: torch.Generator) -> Masks:
        cfg, g = self.cfg, self.grid
        rng = _numpy_rng(generator)
        for _ in range(MAX_SIZE_TRIES):
            target_size = block_size(rng, g, cfg.target_scale, cfg.target_aspect)
            context_size = block_size(rng, g, cfg.context_scale, (1.0, 1.0))
            drawn = self._positions(rng, batch_size, target_size, context_size)
            if drawn is not None:
                break
        else:
            raise RuntimeError(
                f"multiblock masks on a {g}x{g} grid: no draw kept min_keep={cfg.min_keep} context patches "
                f"({MAX_SIZE_TRIES} block sizes x {MAX_TRIES} positions); lower min_keep, n_targets or target_scale"
            )
        targets, context = drawn  # [B, M, N], [B, N] boolean
        n_target = target_size[0] * target_size[1]
        keep = int(context.sum(axis=1).min())
        # a random subset of `keep` context patches per row: random keys, +inf off the context, smallest first
        keys = np.where(context, rng.random(context.shape), np.inf)
        chosen = np.sort(np.argsort(keys, axis=1)[:, :keep], axis=1)  # [B, keep]
        return Masks(context=torch.from_numpy(chosen).long(), targets=true_indices(targets, n_target))

    def _positions(
        self, rng: np.random.Generator, batch_size: int, target_size: tuple[int, int], context_size: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Per-image block positions, redrawing the images whose context is too small: (targets [B, M, N],
        context [B, N]) boolean, or None if some image still fails after MAX_TRIES."""
        cfg, g = self.cfg, self.grid
        targets = np.zeros((batch_size, cfg.n_targets, g * g), dtype=bool)
        context = np.zeros((batch_size, g * g), dtype=bool)
        todo = np.arange(batch_size)
        for _ in range(MAX_TRIES):
            t = place_blocks(rng, g, target_size, (len(todo), cfg.n_targets)).reshape(len(todo), cfg.n_targets, g * g)
            c = place_blocks(rng, g, context_size, (len(todo),)).reshape(len(todo), g * g) & ~t.any(axis=1)
            targets[todo], context[todo] = t, c
            todo = todo[c.sum(axis=1) < cfg.min_keep]
            if len(todo) == 0:
                return targets, context
        return None


class RandomSampler:
    """MAE's uniformly random masks (module docstring)."""

    def __init__(self, cfg: RandomMaskConfig, grid: int) -> None:
        n = grid * grid
        self.n_patches, self.n_mask = n, round(cfg.ratio * n)
        if not 0 < self.n_mask < n:
            raise ValueError(f"ratio={cfg.ratio} masks {self.n_mask} of the {n} patches of a {grid}x{grid} grid; "
                             f"need between 1 and {n - 1}")

    def __call__(self, batch_size: int, generator: torch.Generator) -> Masks:
        keys = torch.rand(batch_size, self.n_patches, generator=generator)  # a random permutation per row
        order = keys.argsort(dim=1)
        n_keep = self.n_patches - self.n_mask
        context = order[:, :n_keep].sort(dim=1).values  # [B, N - n_mask]
        targets = order[:, n_keep:].sort(dim=1).values.unsqueeze(1)  # [B, 1, n_mask]
        return Masks(context=context, targets=targets)


class BlockSampler:
    """One target block, context = its complement (module docstring)."""

    def __init__(self, cfg: BlockMaskConfig, grid: int) -> None:
        self.cfg, self.grid = cfg, grid

    def __call__(self, batch_size: int, generator: torch.Generator) -> Masks:
        g = self.grid
        rng = _numpy_rng(generator)
        for _ in range(MAX_SIZE_TRIES):
            height, width = block_size(rng, g, self.cfg.scale, self.cfg.aspect)
            if height * width < g * g:  # keep at least one context patch
                break
        else:
            raise RuntimeError(f"block masks on a {g}x{g} grid: every drawn block covers the whole grid; lower scale")
        block = place_blocks(rng, g, (height, width), (batch_size,)).reshape(batch_size, g * g)  # [B, N]
        n_target = height * width
        return Masks(
            context=true_indices(~block, g * g - n_target),  # [B, N - Nt]
            targets=true_indices(block, n_target).unsqueeze(1),  # [B, 1, Nt]
        )


@MASKS.register("multiblock", MultiBlockMaskConfig)
def build_multiblock(cfg: MultiBlockMaskConfig, grid: int) -> MultiBlockSampler:
    return MultiBlockSampler(cfg, grid)


@MASKS.register("random", RandomMaskConfig)
def build_random(cfg: RandomMaskConfig, grid: int) -> RandomSampler:
    return RandomSampler(cfg, grid)


@MASKS.register("block", BlockMaskConfig)
def build_block(cfg: BlockMaskConfig, grid: int) -> BlockSampler:
    return BlockSampler(cfg, grid)
