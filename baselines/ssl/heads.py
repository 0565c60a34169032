"""Task heads of the `finetune` method (baselines/methods/finetune.py): encoder + inputs -> predictions.

    head(encoder, inputs [B, ...]) -> [B, n_out]   (class logits, or one value for a regression task)

A head holds only its own (new) layers; it calls the encoder it is given, so `finetune`'s `freeze: true`
trains the head alone (S-JEPA's "new-" regime) and `freeze: false` the encoder too.  Registered in HEADS;
a builder gets (cfg, encoder, n_out, pooling).

    pooled   a linear layer on the pooled encoder tokens (mean, max or mean_max): the default
The S-JEPA heads (contextual, post_local, pre_local) are in baselines/ssl/signal_heads.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from baselines.ssl.encoder import TokenEncoder
from baselines.ssl.representation import pool
from harness.registry import ComponentConfig, Registry

HeadBuilder = Callable[[ComponentConfig, TokenEncoder, int, str], nn.Module]
HEADS: Registry[HeadBuilder] = Registry("head")


class PooledHeadConfig(ComponentConfig):
    name: Literal["pooled"] = "pooled"


class PooledHead(nn.Module):
    def __init__(self, cfg: PooledHeadConfig, encoder: TokenEncoder, n_out: int, pooling: str) -> None:
        super().__init__()
        self.pooling = pooling
        self.linear = nn.Linear(encoder.d_model * (2 if pooling == "mean_max" else 1), n_out)

    def forward(self, encoder: TokenEncoder, inputs: torch.Tensor) -> torch.Tensor:
        return self.linear(pool(encoder(inputs), self.pooling))  # [B, n_out]


HEADS.register("pooled", PooledHeadConfig)(PooledHead)


def build_head(cfg: ComponentConfig, encoder: TokenEncoder, n_out: int, pooling: str) -> nn.Module:
    return HEADS.get(cfg.name).build(cfg, encoder, n_out, pooling)
