"""The small interfaces through which methods, models and tasks plug into the one training loop.

    task   = TASKS.get(cfg.task.name).build(cfg.task, seed)           -> Task
    model  = MODELS.get(cfg.model.name).build(cfg.model, task)         -> nn.Module
    method = METHODS.get(cfg.method.name).build(cfg.method, model, task) -> Method

`harness.train.fit` only ever talks to a `Method`: a loss on a batch and an evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol

import torch
from torch import nn

from harness.registry import ComponentConfig, Registry

IGNORE_INDEX = -100  # target value that carries no loss


@dataclass
class Batch:
    """A batch of token sequences. inputs: [B, T] long; targets: [B, T] long, IGNORE_INDEX where no loss."""

    inputs: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def slice(self, start: int, stop: int) -> "Batch":
        return Batch(self.inputs[start:stop], self.targets[start:stop])


class Task(Protocol):
    """A data generator.  Train batches are drawn with the given generator (deterministic per seed);
    eval splits are fixed sets, identical for every seed of a suite."""

    vocab_size: int
    max_len: int  # longest sequence (train or eval) the model must accept

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]: ...

    def eval_splits(self) -> dict[str, Batch]: ...


@dataclass
class LossOutput:
    loss: torch.Tensor  # scalar, differentiable
    metrics: dict[str, float] = field(default_factory=dict)  # extra per-step scalars (no grad)


class Method(Protocol):
    """How a model is trained and evaluated on a task.  `module` holds every trainable parameter."""

    module: nn.Module

    def loss(self, batch: Batch) -> LossOutput: ...

    def evaluate(self) -> dict[str, float]: ...


TaskBuilder = Callable[[ComponentConfig, int], Task]
ModelBuilder = Callable[[ComponentConfig, Task], nn.Module]
MethodBuilder = Callable[[ComponentConfig, nn.Module, Task], Method]

TASKS: Registry[TaskBuilder] = Registry("task")
MODELS: Registry[ModelBuilder] = Registry("model")
METHODS: Registry[MethodBuilder] = Registry("method")

REGISTRIES: dict[str, Registry] = {"task": TASKS, "model": MODELS, "method": METHODS}
