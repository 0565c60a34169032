"""Mask samplers of multichannel signals on a ("channel", "time") token grid (baselines/ssl/signal_tokens.py).

    spatial         (S-JEPA, arXiv 2403.11772) a random centre electrode per sample; the target is every token
                    of the channels within a radius of it (all time), the context every other token.  The
                    radius is `diameter` / 2 of the head's diameter, distances measured over the scalp (great
                    circles; the head's diameter = the largest one between two electrodes of
                    layout.attrs["positions"]; our reading of "diameter 40/60/80% of the head" [UNVERIFIED]).  Masks have one size per batch, so the block is the k channels
                    nearest the centre, k = round(mean over centres of the channels within the radius): all
                    channels within a radius that adapts to hold k.  `target_share` = k / C is the fraction of
                    tokens masked (the random-token arm at the same count: `random` with that ratio).
    spatiotemporal  (Brain-JEPA, arXiv 2409.19407; its MaskCollator_fmri simplified to sizes drawn per batch)
                    observation = a random `obs_regions` share of the regions x a contiguous window of an
                    `obs_time` share of the time patches (position per sample).  Targets, concatenated in one
                    block [B, 1, Na + Nb + Ng] as Brain-JEPA concatenates them per sample:
                      cross-region (alpha)  an `alpha_regions` share of the regions, taken out of the observed
                                            ones, x a contiguous `alpha_time` share of the window
                      cross-time (beta)     `beta_regions` of the regions still observed x every time patch
                                            outside the window
                      double-cross (gamma)  `beta_regions` of the unobserved regions (alpha's and the never
                                            observed) x every time patch outside the window
                    context = the observed regions left x the window.  Every size is at least 1 token.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from baselines.ssl.layout import Layout
from baselines.ssl.masks import MASKS, Masks, numpy_rng
from baselines.tasks.ranges import check_interval
from harness.registry import ComponentConfig


def signal_grid(layout: Layout, user: str) -> tuple[int, int]:
    if layout.axes != ("channel", "time") or layout.shape is None:
        raise ValueError(f"{user} needs a (channel, time) token grid; the layout has axes {layout.axes}")
    return layout.shape  # (C, t)


def sorted_tensor(index: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.sort(index, axis=1)).long()


class SpatialMaskConfig(ComponentConfig):
    name: Literal["spatial"] = "spatial"
    diameter: float = Field(default=0.6, gt=0.0, le=1.0)  # of the head's diameter (S-JEPA: 0.4, 0.6, 0.8)


def electrode_distances(layout: Layout, user: str) -> np.ndarray:
    """[C, C] great-circle distances (radians, over the scalp) between the channels' positions
    (layout.attrs["positions"], one row per token), taken as directions from the head's centre."""
    C, t = signal_grid(layout, user)
    if "positions" not in layout.attrs:
        raise ValueError(f"{user} needs electrode positions (layout attribute 'positions')")
    pos = layout.attrs["positions"][::t].double()  # [C, 3]
    unit = pos / pos.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return torch.arccos((unit @ unit.T).clamp(-1.0, 1.0)).numpy()


class SpatialSampler:
    overlap = False

    def __init__(self, cfg: SpatialMaskConfig, layout: Layout) -> None:
        self.grid = signal_grid(layout, "mask spatial")
        dist = electrode_distances(layout, "mask spatial")  # [C, C]
        radius = cfg.diameter * dist.max() / 2
        C = self.grid[0]
        self.k = int(min(max(round(float((dist <= radius).sum(axis=1).mean())), 1), C - 1))
        self.order = np.argsort(dist, axis=1, kind="stable")  # [C, C]: channels by distance from each centre
        self.target_share = self.k / C

    def __call__(self, layout: Layout, batch_size: int, generator: torch.Generator, progress: float) -> Masks:
        (C, t), k = self.grid, self.k
        centre = torch.randint(0, C, (batch_size,), generator=generator).numpy()  # [B]
        masked = self.order[centre, :k]  # [B, k] channels
        kept = self.order[centre, k:]  # [B, C - k]
        steps = np.arange(t)
        targets = (masked[:, :, None] * t + steps).reshape(batch_size, 1, k * t)  # [B, 1, k*t] all their tokens
        context = (kept[:, :, None] * t + steps).reshape(batch_size, (C - k) * t)  # [B, (C-k)*t]
        return Masks(context=sorted_tensor(context), targets=torch.from_numpy(np.sort(targets, axis=2)).long())


MASKS.register("spatial", SpatialMaskConfig)(SpatialSampler)


class SpatiotemporalMaskConfig(ComponentConfig):
    name: Literal["spatiotemporal"] = "spatiotemporal"
    obs_regions: tuple[float, float] = (0.84, 1.0)  # Brain-JEPA: 84-100% of the ROIs
    obs_time: tuple[float, float] = (0.75, 0.9)  # Brain-JEPA: 8-9 of 10 patches
    alpha_regions: tuple[float, float] = (0.45, 0.6)  # Brain-JEPA: 45-60% of the ROIs
    alpha_time: tuple[float, float] = (0.25, 0.6)  # of the window (Brain-JEPA: 2-5 of 8-9 patches)
    beta_regions: tuple[float, float] = (0.15, 0.3)  # Brain-JEPA: 15-30% of the ROIs

    @model_validator(mode="after")
    def _check(self) -> SpatiotemporalMaskConfig:
        for key in ("obs_regions", "obs_time", "alpha_regions", "alpha_time", "beta_regions"):
            check_interval(key, getattr(self, key), 0, 1.0)
        return self


def share(rng: np.random.Generator, interval: tuple[float, float], n: int, low: int, high: int) -> int:
    """round(u * n), u uniform in `interval`, clipped to [low, high]."""
    return int(min(max(round(rng.uniform(*interval) * n), low), high))


def subset_rows(rng: np.random.Generator, pool: np.ndarray, count: int) -> np.ndarray:
    """`count` random entries of each row of pool [B, P] -> [B, count]."""
    pick = np.argsort(rng.random(pool.shape), axis=1)[:, :count]
    return np.take_along_axis(pool, pick, axis=1)


def tokens_of(regions: np.ndarray, times: np.ndarray, t: int) -> np.ndarray:
    """Token indices of regions [B, r] x times [B, s] on a grid with t time patches -> [B, r*s]."""
    return (regions[:, :, None] * t + times[:, None, :]).reshape(len(regions), -1)


class SpatiotemporalSampler:
    overlap = False

    def __init__(self, cfg: SpatiotemporalMaskConfig, layout: Layout) -> None:
        self.cfg, self.grid = cfg, signal_grid(layout, "mask spatiotemporal")
        R, t = self.grid
        if R < 3 or t < 2:
            raise ValueError(f"mask spatiotemporal needs >= 3 regions and >= 2 time patches, the grid is {R} x {t}")

    def __call__(self, layout: Layout, batch_size: int, generator: torch.Generator, progress: float) -> Masks:
        cfg, (R, t), B = self.cfg, self.grid, batch_size
        rng = numpy_rng(generator)
        n_time = share(rng, cfg.obs_time, t, 1, t - 1)  # window length
        n_obs = share(rng, cfg.obs_regions, R, 2, R)
        n_alpha = share(rng, cfg.alpha_regions, R, 1, n_obs - 1)
        n_alpha_time = share(rng, cfg.alpha_time, n_time, 1, n_time)
        n_beta = share(rng, cfg.beta_regions, R, 1, min(n_obs - n_alpha, R - n_obs + n_alpha))
        regions = np.argsort(rng.random((B, R)), axis=1)  # [B, R] a random order of the regions per sample
        alpha, context_regions, unobserved = regions[:, :n_alpha], regions[:, n_alpha:n_obs], np.concatenate(
            [regions[:, :n_alpha], regions[:, n_obs:]], axis=1)
        start = rng.integers(0, t - n_time + 1, size=B)  # [B] window start
        window = start[:, None] + np.arange(n_time)  # [B, n_time]
        outside = np.array([np.setdiff1d(np.arange(t), w) for w in window])  # [B, t - n_time]
        a_start = start + rng.integers(0, n_time - n_alpha_time + 1, size=B)
        alpha_time = a_start[:, None] + np.arange(n_alpha_time)  # [B, n_alpha_time] inside the window
        targets = [tokens_of(alpha, alpha_time, t)]
        if t > n_time:
            targets += [tokens_of(subset_rows(rng, context_regions, n_beta), outside, t),
                        tokens_of(subset_rows(rng, unobserved, n_beta), outside, t)]
        target = np.sort(np.concatenate(targets, axis=1), axis=1)[:, None, :]  # [B, 1, Na + Nb + Ng]
        return Masks(context=sorted_tensor(tokens_of(context_regions, window, t)), targets=torch.from_numpy(target).long())


MASKS.register("spatiotemporal", SpatiotemporalMaskConfig)(SpatiotemporalSampler)
