"""What a probe reads: a frozen encoder's tokens, or their pooling, for a batch or a whole eval split.

Every SSL method exposes the encoder to probe as `method.representation() -> Representation` (its config's
`probe_encoder`, `pooling` and `eval_batch_size`); a probing stage can build a method, load the pre-training
run's `method.module` state dict and probe `method.representation()` many ways.

    rep.tokens(batch)              -> [B, N, D]   the encoder's output tokens ([REG] dropped)
    rep.pooled(batch, pooling)     -> [B, D']     pooled over tokens (None: the configured pooling)
    rep.split_tokens(split)        -> [S, N, D]   on CPU, eval_batch_size samples at a time
    rep.split_pooled(split, pooling) -> [S, D']   on CPU

Calls run in eval mode under no_grad (the module's mode is restored after).  Pooling:
    mean        mean over tokens (I-JEPA, MAE linear probes)
    max         max over tokens
    mean_max    [mean, max] concatenated (Point-JEPA: 2D)
    flatten     every token's features side by side (T-JEPA's D x h representation: N * D)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from baselines.tasks.labeled import LabeledBatch

Pooling = Literal["mean", "max", "mean_max", "flatten"]


def pool(tokens: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """tokens [B, N, D] -> [B, D'] (module docstring)."""
    if pooling == "mean":
        return tokens.mean(dim=1)  # [B, D]
    if pooling == "max":
        return tokens.amax(dim=1)  # [B, D]
    if pooling == "mean_max":
        return torch.cat([tokens.mean(dim=1), tokens.amax(dim=1)], dim=1)  # [B, 2D]
    return tokens.flatten(1)  # [B, N*D]


class Representation:
    """`encode(inputs [B, ...]) -> tokens [B, N, D]` frozen; `module` (None: no parameters) is put in eval
    mode around every call and tells the device."""

    def __init__(self, encode: Callable[[torch.Tensor], torch.Tensor], module: nn.Module | None, pooling: Pooling,
                 batch_size: int) -> None:
        self.encode, self.module, self.pooling, self.batch_size = encode, module, pooling, batch_size

    @torch.no_grad()
    def tokens(self, batch: LabeledBatch) -> torch.Tensor:
        if self.module is None:
            return self.encode(batch.inputs)
        was_training = self.module.training
        self.module.eval()
        try:
            device = next(self.module.parameters()).device
            return self.encode(batch.inputs.to(device))  # [B, N, D]
        finally:
            self.module.train(was_training)

    def pooled(self, batch: LabeledBatch, pooling: Pooling | None = None) -> torch.Tensor:
        return pool(self.tokens(batch), pooling or self.pooling)  # [B, D']

    def split_tokens(self, split: LabeledBatch) -> torch.Tensor:
        chunks = [self.tokens(split.slice(i, i + self.batch_size)).cpu() for i in range(0, len(split), self.batch_size)]
        return torch.cat(chunks)  # [S, N, D]

    def split_pooled(self, split: LabeledBatch, pooling: Pooling | None = None) -> torch.Tensor:
        chunks = [self.pooled(split.slice(i, i + self.batch_size), pooling).cpu() for i in range(0, len(split), self.batch_size)]
        return torch.cat(chunks)  # [S, D']
