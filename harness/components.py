"""The small interfaces through which methods, models and tasks plug into the one training loop.

    task   = TASKS.get(cfg.task.name).build(cfg.task, seed)           -> Task
    model  = MODELS.get(cfg.model.name).build(cfg.model, task)         -> nn.Module
    method = METHODS.get(cfg.method.name).build(cfg.method, model, task) -> Method

`harness.train.fit` only ever talks to a `Method`: a loss on a batch and an evaluation.  A batch is
any object with `to(device)` and `len()` (`Batch` for tokens; image and covariance batches live with
their tasks); `Method.collate` runs in the data stream, on CPU, before the batch reaches the device
(mask samplers run there, not in the model).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol, Self, runtime_checkable

import torch
from torch import nn

from harness import registry
from harness.registry import REGISTRIES, ComponentConfig, Registry

IGNORE_INDEX = -100  # target value that carries no loss


@dataclass
class Batch:
    """A batch of token sequences. inputs: [B, T] long; targets: [B, T] long, IGNORE_INDEX where no loss."""

    inputs: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def slice(self, start: int, stop: int) -> Batch:
        return Batch(self.inputs[start:stop], self.targets[start:stop])

    def to(self, device: torch.device) -> Batch:
        return Batch(self.inputs.to(device, non_blocking=True), self.targets.to(device, non_blocking=True))


class Movable(Protocol):
    """What the loop needs of a batch: its size and a copy on a device."""

    def __len__(self) -> int: ...

    def to(self, device: torch.device) -> Self: ...


class Task(Protocol):
    """A data generator.  Train batches are drawn with the given generator (deterministic per seed);
    eval splits are fixed sets, identical for every seed of a suite."""

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Movable]: ...

    def eval_splits(self) -> Mapping[str, Movable]: ...


@runtime_checkable
class TokenTask(Task, Protocol):
    """A task over token sequences (`Batch`): what sequence models are built from."""

    vocab_size: int
    max_len: int  # longest sequence (train or eval) the model must accept

    def examples_in(self, batch: Batch) -> int:
        """How many task examples a batch holds (rows, or more when examples are packed into rows)."""
        ...


SIZING_TOKENS = 64  # positions a length-linear model is traced on when sizing a run (estimate, validation)


def length_sized(module: nn.Module, batch: Movable) -> tuple[Movable, float]:
    """A token batch cut to its first SIZING_TOKENS positions when `module` declares `linear_in_length` (a
    recurrent model: every position costs the same FLOPs and keeps the same activations), and the factor that
    scales the cost measured on it back to the whole batch; else the batch as it is and 1.  Tracing an LSTM over
    2048 positions on the meta device took minutes (each step's ops one by one); 64 take a second."""
    if getattr(module, "linear_in_length", False) and isinstance(batch, Batch) and batch.inputs.shape[1] > SIZING_TOKENS:
        return Batch(batch.inputs[:, :SIZING_TOKENS], batch.targets[:, :SIZING_TOKENS]), batch.inputs.shape[1] / SIZING_TOKENS
    return batch, 1.0


def token_task(task: Task, user: str) -> TokenTask:
    """The task as a TokenTask, or a clear error naming the component that needs one."""
    if not isinstance(task, TokenTask):
        raise TypeError(f"{user} needs a token-sequence task; {type(task).__name__} is not one")
    return task


@dataclass
class LossOutput:
    loss: torch.Tensor  # scalar, differentiable
    metrics: dict[str, float] = field(default_factory=dict)  # extra per-step scalars (no grad)


class Method(Protocol):
    """How a model is trained and evaluated on a task.  `module` holds every trainable parameter."""

    module: nn.Module

    def collate(self, batch: Movable, generator: torch.Generator) -> Movable:
        """Runs in the data stream (CPU) before the batch goes to the device; identity for most methods."""
        ...

    def loss(self, batch: Movable) -> LossOutput: ...

    def after_step(self, step: int, total_steps: int) -> None:
        """Runs after each optimizer step (EMA target updates and other non-gradient state)."""
        ...

    def evaluate(self) -> dict[str, float]: ...


@runtime_checkable
class WeighsLoss(Protocol):
    """A method whose loss is a mean over something other than rows: `loss_units(batch)` is how many units
    (e.g. scored target tokens) the loss of `batch` averages over, so that gradient accumulation weighs each
    micro-batch right (harness.train.precision).  Methods without it average over rows."""

    def loss_units(self, batch: Movable) -> int: ...


@runtime_checkable
class CountsTokens(Protocol):
    """A method that knows how many tokens a batch holds (`tokens_in`, for tokens/s); others log no tokens/s."""

    def tokens_in(self, batch: Movable) -> int: ...


def loss_units(method: Method, batch: Movable) -> int:
    return method.loss_units(batch) if isinstance(method, WeighsLoss) else len(batch)


def tokens_in(method: Method, batch: Movable) -> int | None:
    return method.tokens_in(batch) if isinstance(method, CountsTokens) else None


@runtime_checkable
class FromSource(Protocol):
    """A method that starts from a source run's trained method (a stage run, harness.runner.start_from):
    e.g. a probe reading the source's representation.  Methods without it get the source's weights copied."""

    def from_source(self, source: Method) -> None: ...


TaskBuilder = Callable[[ComponentConfig, int], Task]
ModelBuilder = Callable[[ComponentConfig, Task], nn.Module]
MethodBuilder = Callable[[ComponentConfig, nn.Module, Task], Method]

# the registries live in harness.registry (torch-free, for the spec layer); typed here for their users
TASKS: Registry[TaskBuilder] = registry.TASKS
MODELS: Registry[ModelBuilder] = registry.MODELS
METHODS: Registry[MethodBuilder] = registry.METHODS

__all__ = ["REGISTRIES", "TASKS", "MODELS", "METHODS", "Batch", "Movable", "Task", "TokenTask", "token_task",
           "LossOutput", "Method", "FromSource", "WeighsLoss", "CountsTokens", "loss_units", "tokens_in", "IGNORE_INDEX",
           "ComponentConfig", "SIZING_TOKENS", "length_sized"]
