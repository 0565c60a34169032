"""Labelled data for self-supervised pre-training and frozen-feature probing, whatever the modality.

A `LabeledTask` streams `LabeledBatch`es for pre-training (labels ride along, unused by the SSL losses) and
holds fixed eval splits that carry labels: "train" is what a probe is fit on, "test" what it is scored on.
Its `input_spec` tells a tokenizer what one input is:

    GridInput(channels, size=(H, W), axes=("row", "col"))   inputs [B, C, H, W]: images, spectrograms
                                                            (axes=("freq", "time"))
    TableInput(cardinalities=(0, 0, 5, ...))               inputs [B, F] float: one column per feature;
                                                            0 = numeric (standardized), k > 0 = categorical
                                                            with codes 0..k-1 stored as floats
    PointCloudInput(n_points)                               inputs [B, P, 3] float: unordered xyz points

`n_classes` is the number of classes of the label (labels [B] long), or 0 for a regression target
(labels [B] float).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from harness.components import Task


@dataclass
class LabeledBatch:
    """inputs: [B, ...] float32 (the task's input_spec); labels: [B] long (classes) or float (regression)."""

    inputs: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def to(self, device: torch.device) -> LabeledBatch:
        return LabeledBatch(self.inputs.to(device, non_blocking=True), self.labels.to(device, non_blocking=True))

    def slice(self, start: int, stop: int) -> LabeledBatch:
        return LabeledBatch(self.inputs[start:stop], self.labels[start:stop])

    def subset(self, index: torch.Tensor) -> LabeledBatch:
        return LabeledBatch(self.inputs[index], self.labels[index])


@dataclass(frozen=True)
class GridInput:
    """Inputs [B, channels, H, W] on a regular grid whose two axes are named `axes` (rows first)."""

    channels: int
    size: tuple[int, int]
    axes: tuple[str, str] = ("row", "col")


@dataclass(frozen=True)
class TableInput:
    """Inputs [B, F]: feature j is numeric when cardinalities[j] == 0, else categorical with that many codes."""

    cardinalities: tuple[int, ...]

    @property
    def n_features(self) -> int:
        return len(self.cardinalities)


@dataclass(frozen=True)
class PointCloudInput:
    """Inputs [B, n_points, 3]: an unordered set of xyz points per sample (z up)."""

    n_points: int


InputSpec = GridInput | TableInput | PointCloudInput


@runtime_checkable
class LabeledTask(Task, Protocol):
    """A task whose batches and eval splits are `LabeledBatch`es (module docstring)."""

    input_spec: InputSpec
    n_classes: int  # 0: regression


def labeled_task(task: Task, user: str) -> LabeledTask:
    """The task as a LabeledTask, or a clear error naming the component that needs one."""
    if not isinstance(task, LabeledTask):
        raise TypeError(f"{user} needs a labelled task (images, spectrograms, tables); {type(task).__name__} is not one")
    return task


def epoch_batches(data: LabeledBatch, batch_size: int, generator: torch.Generator) -> Iterator[LabeledBatch]:
    """Infinite stream of batches of a finite set: epochs of fresh permutations, back to back."""
    n = len(data)
    order = torch.empty(0, dtype=torch.long)
    while True:
        while len(order) < batch_size:
            order = torch.cat([order, torch.randperm(n, generator=generator)])
        idx, order = order[:batch_size], order[batch_size:]
        yield data.subset(idx)
