"""Mask samplers that need no geometry: any layout of N tokens.

    random   (MAE, He et al. 2022) a uniformly random subset of round(ratio * N) tokens is masked: the
             targets (one block [B, 1, n_mask]); the others are the context [B, N - n_mask].
    subsets  (T-JEPA, arXiv 2410.05016) per batch, a context size round(u * N), u uniform in
             `context_share`, and a target size round(v * N), v uniform in `target_share` (clipped to the
             tokens left); per sample, a uniformly random context subset and n_targets target subsets drawn
             from the remaining tokens: the targets never meet the context, they may overlap each other.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from baselines.ssl.layout import Layout
from baselines.ssl.masks import MASKS, Masks, numpy_rng, random_subset
from baselines.tasks.ranges import check_interval
from harness.registry import ComponentConfig


class RandomMaskConfig(ComponentConfig):
    name: Literal["random"] = "random"
    ratio: float = Field(default=0.75, gt=0.0, lt=1.0)  # fraction of the tokens masked (the targets)


class RandomSampler:
    overlap = False

    def __init__(self, cfg: RandomMaskConfig, layout: Layout) -> None:
        n = layout.n_tokens
        self.n_tokens, self.n_mask = n, round(cfg.ratio * n)
        if not 0 < self.n_mask < n:
            raise ValueError(f"ratio={cfg.ratio} masks {self.n_mask} of the {n} tokens; need between 1 and {n - 1}")

    def __call__(self, layout: Layout, batch_size: int, generator: torch.Generator, progress: float) -> Masks:
        keys = torch.rand(batch_size, self.n_tokens, generator=generator)  # a random permutation per row
        order = keys.argsort(dim=1)
        n_keep = self.n_tokens - self.n_mask
        context = order[:, :n_keep].sort(dim=1).values  # [B, N - n_mask]
        targets = order[:, n_keep:].sort(dim=1).values.unsqueeze(1)  # [B, 1, n_mask]
        return Masks(context=context, targets=targets)


MASKS.register("random", RandomMaskConfig)(RandomSampler)


class SubsetsMaskConfig(ComponentConfig):
    name: Literal["subsets"] = "subsets"
    n_targets: int = Field(default=4, ge=1)
    context_share: tuple[float, float] = (0.2, 0.4)  # fraction of the tokens in the context
    target_share: tuple[float, float] = (0.2, 0.4)  # fraction of the tokens in one target subset

    @model_validator(mode="after")
    def _check(self) -> SubsetsMaskConfig:
        check_interval("context_share", self.context_share, 0, 1.0)
        check_interval("target_share", self.target_share, 0, 1.0)
        return self


class SubsetsSampler:
    overlap = False

    def __init__(self, cfg: SubsetsMaskConfig, layout: Layout) -> None:
        if layout.n_tokens < 2:
            raise ValueError(f"mask subsets needs at least 2 tokens, the layout has {layout.n_tokens}")
        self.cfg, self.n_tokens = cfg, layout.n_tokens

    def __call__(self, layout: Layout, batch_size: int, generator: torch.Generator, progress: float) -> Masks:
        cfg, N = self.cfg, self.n_tokens
        rng = numpy_rng(generator)
        n_ctx = min(max(round(rng.uniform(*cfg.context_share) * N), 1), N - 1)
        n_tgt = min(max(round(rng.uniform(*cfg.target_share) * N), 1), N - n_ctx)
        everything = np.ones((batch_size, N), dtype=bool)
        context = random_subset(rng, everything, n_ctx)  # [B, Nc]
        rest = everything.copy()
        np.put_along_axis(rest, context.numpy(), False, axis=1)  # [B, N]: the tokens left for the targets
        targets = torch.stack([random_subset(rng, rest, n_tgt) for _ in range(cfg.n_targets)], dim=1)  # [B, M, Nt]
        return Masks(context=context, targets=targets)


MASKS.register("subsets", SubsetsMaskConfig)(SubsetsSampler)
