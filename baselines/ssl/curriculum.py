"""Curriculum masking (A-JEPA, arXiv 2311.15830): each batch uses the `hard` sampler with a probability that
rises with training progress, otherwise the `easy` one.

    p_hard(t) = min(1, sqrt(t * (1 - c0^2) + c0^2)),   t = progress in [0, 1)

the competence schedule (c0 = 0.01: p_hard ~ sqrt(t): 0.5 at a quarter of training, 0.71 at half, -> 1).
A-JEPA pairs easy = I-JEPA random blocks with hard = time-frequency masking.  `inverse` plays the schedule
backwards in time, p_hard(1 - t): the same total exposure to each sampler in the opposite order (hard first).

Drawing from the run's generator: one seed per batch, for a private generator that then decides easy / hard
and drives the chosen sampler; so the run's mask stream advances the same whatever the progress (a resumed
run replays it before it knows the progress; see masks.py).  stats: mask/hard (1.0 for a hard batch) and
mask/p_hard, logged with the training metrics.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
from pydantic import Field

from baselines.ssl.grid_masks import MultiBlockMaskConfig, StripsMaskConfig
from baselines.ssl.layout import Layout
from baselines.ssl.masks import MASKS, MaskConfig, Masks, build_mask_sampler
from harness.registry import ComponentConfig


def hard_probability(progress: float, c0: float, inverse: bool) -> float:
    t = 1.0 - progress if inverse else progress
    return min(1.0, math.sqrt(t * (1.0 - c0**2) + c0**2))


class CurriculumMaskConfig(ComponentConfig):
    STATS: ClassVar[tuple[str, ...]] = ("mask/hard", "mask/p_hard")
    name: Literal["curriculum"] = "curriculum"
    easy: MaskConfig = Field(default_factory=MultiBlockMaskConfig)
    hard: MaskConfig = Field(default_factory=StripsMaskConfig)
    c0: float = Field(default=0.01, ge=0.0, le=1.0)  # initial competence: p_hard at the start is c0
    inverse: bool = False  # hard first


class CurriculumSampler:
    def __init__(self, cfg: CurriculumMaskConfig, layout: Layout) -> None:
        self.cfg = cfg
        self.easy, self.hard = build_mask_sampler(cfg.easy, layout), build_mask_sampler(cfg.hard, layout)
        self.overlap = self.easy.overlap or self.hard.overlap

    def __call__(self, layout: Layout, batch_size: int, generator: torch.Generator, progress: float) -> Masks:
        own = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator).item()))
        p = hard_probability(progress, self.cfg.c0, self.cfg.inverse)
        hard = bool(torch.rand(1, generator=own).item() < p)
        masks = (self.hard if hard else self.easy)(layout, batch_size, own, progress)
        masks.stats.update({"mask/hard": float(hard), "mask/p_hard": p})
        return masks


MASKS.register("curriculum", CurriculumMaskConfig)(CurriculumSampler)
