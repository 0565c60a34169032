"""Numerics of a training step: autocast, the fp16 grad scaler, TF32, gradient accumulation.

    precision fp32   every op in float32 (the default; a resumed run is bit-identical)
              bf16   the forward and the loss under torch.autocast(bfloat16): matmuls in bf16, reductions
                     and the weights, gradients and optimizer state in fp32 (no scaler: bf16 has fp32's range)
              fp16   the same in float16, with a dynamic grad scaler (torch.amp.GradScaler): the loss is
                     scaled up before backward, the gradients unscaled before clipping, and a step whose
                     gradients overflowed is skipped (the scale halves; it doubles again after 2000 good steps)

Evaluation runs outside autocast, in fp32.  TF32 (`training.tf32`, CUDA only) lets fp32 matmuls and
convolutions use TF32 tensor cores (10-bit mantissa inputs, fp32 accumulation).

Gradient accumulation: a step's batch is cut into micro-batches of `training.micro_batch_size` rows; each
micro-batch's mean loss is weighted by its share of the units the full batch's loss averages over
(`Method.loss_units`: target tokens for token-level cross-entropy, rows by default), so the accumulated
gradient is the full batch's gradient up to float rounding.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Literal, Protocol, Self, runtime_checkable

import torch

from harness.components import Method, Movable, loss_units

Precision = Literal["fp32", "bf16", "fp16"]
DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Numerics:
    """Autocast and grad scaling for one run (see the module docstring)."""

    def __init__(self, precision: Precision, device: torch.device, tf32: bool) -> None:
        self.precision = precision
        self.device = device
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        if self.scaler.is_enabled():  # a skipped first step is expected, not the misuse torch warns about
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before `optimizer.step\(\)`")
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32

    def autocast(self) -> AbstractContextManager:
        dtype = DTYPES.get(self.precision)
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None)

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def unscale(self, opt: torch.optim.Optimizer) -> None:
        """Before clipping: the gradients back at their true scale (a no-op without a scaler)."""
        if self.scaler.is_enabled():
            self.scaler.unscale_(opt)

    def step(self, opt: torch.optim.Optimizer) -> None:
        if self.scaler.is_enabled():
            self.scaler.step(opt)  # skipped when a gradient is inf/NaN
            self.scaler.update()
        else:
            opt.step()


@runtime_checkable
class Sliceable(Protocol):
    """A batch that can be cut into micro-batches (rows start..stop)."""

    def __len__(self) -> int: ...

    def slice(self, start: int, stop: int) -> Self: ...


def micro_batches(method: Method, batch: Movable, size: int | None) -> Iterator[tuple[Movable, float]]:
    """(micro-batch, weight) pairs covering `batch`; the weights sum to 1 (module docstring).  One pair
    (the batch, 1.0) when `size` is None or not smaller than the batch."""
    n = len(batch)
    if size is None or size >= n:
        yield batch, 1.0
        return
    if not isinstance(batch, Sliceable):
        raise TypeError(f"training.micro_batch_size needs batches with slice(start, stop); {type(batch).__name__} has none")
    parts = [batch.slice(i, min(i + size, n)) for i in range(0, n, size)]
    units = [float(loss_units(method, p)) for p in parts]
    total = sum(units)
    if total <= 0:
        raise ValueError(f"a batch of {n} rows carries no loss (loss_units 0)")
    for part, u in zip(parts, units):
        if u > 0:  # a micro-batch without any scored position adds nothing (its mean loss is undefined)
            yield part, u / total
