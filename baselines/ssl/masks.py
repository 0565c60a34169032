"""Mask samplers: which tokens the context encoder sees and which tokens it must predict.

    sampler(layout, batch_size, generator, progress) -> Masks(context [B, Nc], targets [B, M, Nt])

Indices are into the N tokens of the tokenizer's layout (baselines/ssl/layout.py), sorted per row (context)
and per block (targets).  `progress` is the fraction of training done before this batch (0 at the first
step), for samplers that follow a schedule (curricula).  Context and targets are disjoint unless the
sampler's `overlap` is True.  All randomness comes from the torch `generator` (the run's mask stream, seeded
from the run's seed): masks are reproducible per generator state.

Samplers run in the data stream, on CPU, through `MaskStream` (a method's `collate`), which counts the
batches it drew: step k's batch gets progress (k - 1) / total_steps, the total being learned from the
method's `after_step`.  A resumed run replays the stream from the seed before its state is loaded, with
the total not yet known; so a sampler must draw from `generator` the same amount whatever the progress
(the curriculum draws one seed for a private generator and samples from that).

Registered in MASKS (one source of truth: a method's `mask` field is validated through it):
    grid_masks.py   multiblock (I-JEPA), block, strips (A-JEPA's time / frequency masking)
    token_masks.py  random (MAE), subsets (T-JEPA's feature subsets)
    curriculum.py   curriculum (A-JEPA: easy -> hard with a probability that rises over training)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from baselines.ssl.layout import Layout
from baselines.ssl.registered import Registered
from baselines.tasks.labeled import LabeledBatch
from harness.registry import ComponentConfig, Registry


@dataclass
class Masks:
    """context: [B, Nc] long, token indices visible to the context encoder (sorted per row);
    targets: [B, M, Nt] long, M target blocks per sample, the token indices to predict (sorted per block);
    stats: per-batch scalars a sampler reports (logged with the training metrics, e.g. curriculum/hard)."""

    context: torch.Tensor
    targets: torch.Tensor
    stats: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.context.shape[0]

    def to(self, device: torch.device) -> Masks:
        return Masks(self.context.to(device, non_blocking=True), self.targets.to(device, non_blocking=True), self.stats)

    def slice(self, start: int, stop: int) -> Masks:
        return Masks(self.context[start:stop], self.targets[start:stop], self.stats)


@dataclass
class MaskedBatch:
    """inputs: [B, ...]; labels: [B]; masks: the tokens each sample shows and hides; layout: its tokens'."""

    inputs: torch.Tensor
    labels: torch.Tensor
    masks: Masks
    layout: Layout

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def to(self, device: torch.device) -> MaskedBatch:
        return MaskedBatch(self.inputs.to(device, non_blocking=True), self.labels.to(device, non_blocking=True),
                           self.masks.to(device), self.layout.to(device))

    def slice(self, start: int, stop: int) -> MaskedBatch:
        return MaskedBatch(self.inputs[start:stop], self.labels[start:stop], self.masks.slice(start, stop), self.layout)


class MaskSampler(Protocol):
    overlap: bool  # True: context and targets may share tokens

    def __call__(self, layout: Layout, batch_size: int, generator: torch.Generator, progress: float) -> Masks: ...


MaskBuilder = Callable[[ComponentConfig, Layout], MaskSampler]
MASKS: Registry[MaskBuilder] = Registry("mask")
MaskConfig = Registered(MASKS)


def build_mask_sampler(cfg: ComponentConfig, layout: Layout) -> MaskSampler:
    """The sampler of `cfg` for tokens laid out as `layout` (checked at build time)."""
    return MASKS.get(cfg.name).build(cfg, layout)


def mask_stat_names(cfg: ComponentConfig) -> list[str]:
    """The Masks.stats keys the sampler of `cfg` logs: its config class's STATS and those of the mask configs
    it holds (a curriculum's easy and hard samplers)."""
    held = [v for v in (getattr(cfg, f) for f in type(cfg).model_fields) if isinstance(v, ComponentConfig)]
    return [*getattr(type(cfg), "STATS", ()), *(n for c in held for n in mask_stat_names(c))]


class MaskStream:
    """A method's collate: draws each training batch's masks, counting batches to know the progress."""

    def __init__(self, sampler: MaskSampler, layout_of: Callable[[torch.Tensor], Layout]) -> None:
        self.sampler, self.layout_of = sampler, layout_of
        self.drawn = 0  # batches drawn so far = the step of the next batch - 1
        self.total = 0  # training steps, known after the first after_step (0: not yet)

    def __call__(self, batch: LabeledBatch, generator: torch.Generator) -> MaskedBatch:
        progress = self.drawn / self.total if self.total else 0.0
        self.drawn += 1
        layout = self.layout_of(batch.inputs)
        return MaskedBatch(batch.inputs, batch.labels, self.sampler(layout, len(batch), generator, progress), layout)

    def saw_step(self, total_steps: int) -> None:
        self.total = total_steps

    def state_dict(self) -> dict[str, Any]:
        return {"drawn": self.drawn, "total": self.total}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.drawn, self.total = int(state["drawn"]), int(state["total"])


# ----------------------------------------------------------------------------------------------
# helpers of the samplers


def numpy_rng(generator: torch.Generator) -> np.random.Generator:
    """A numpy generator seeded by one draw from the torch generator."""
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator).item()))


def true_indices(mask: np.ndarray, count: int) -> torch.Tensor:
    """Sorted flat indices of the True entries of each row of mask [..., N] (each row has `count` of them)."""
    order = np.argsort(~mask, axis=-1, kind="stable")[..., :count]  # True entries first, in index order
    return torch.from_numpy(np.ascontiguousarray(order)).long()


def random_subset(rng: np.random.Generator, allowed: np.ndarray, count: int) -> torch.Tensor:
    """A uniformly random subset of `count` True entries of each row of allowed [B, N], sorted: [B, count]."""
    keys = np.where(allowed, rng.random(allowed.shape), np.inf)  # random keys, +inf where not allowed
    return torch.from_numpy(np.sort(np.argsort(keys, axis=1)[:, :count], axis=1)).long()
