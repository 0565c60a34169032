"""S-JEPA's downstream heads (arXiv 2403.11772; braindecode's SignalJEPA_Contextual / _PostLocal / _PreLocal),
registered in HEADS for the `finetune` method, over an encoder whose tokenizer is `channel_conv`:

    contextual   the full encoder's tokens [B, C*t, D] -> [B, C, t, D] -> a spatial filter to `virtual`
                 channels -> [B, V, t, D] -> flattened -> linear
    post_local   the local encoder alone (the per-channel CNN, no transformer) [B, C, t, D] -> the same
                 spatial filter and linear layer
    pre_local    a spatial filter of the raw signals [B, C, T] -> [B, V, T] first, then the local encoder on
                 each virtual channel [B, V, t, D] -> flattened -> linear (the paper's best head)

The spatial filter is a learned [V, C] matrix (braindecode: a Conv over the channel axis with 4 output
channels); with `finetune`'s `freeze: true` only the filter and the linear layer train (the "new-" regime).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from baselines.ssl.encoder import TokenEncoder
from baselines.ssl.heads import HEADS
from baselines.ssl.signal_tokens import ChannelConv
from harness.registry import ComponentConfig


class SignalHeadConfig(ComponentConfig):
    name: Literal["contextual", "post_local", "pre_local"] = "pre_local"
    virtual: int = Field(default=4, ge=1)  # virtual channels of the spatial filter (S-JEPA: 4)


class SignalHead(nn.Module):
    def __init__(self, cfg: SignalHeadConfig, encoder: TokenEncoder, n_out: int, pooling: str) -> None:
        super().__init__()
        tok = encoder.tokenizer
        if not isinstance(tok, ChannelConv):
            raise TypeError(f"head {cfg.name} needs the channel_conv tokenizer, not {type(tok).__name__}")
        (C, t), D = encoder.layout.shape, encoder.d_model
        self.kind, self.C = cfg.name, C
        self.spatial = nn.Parameter(torch.randn(cfg.virtual, C) / C**0.5)  # [V, C]
        self.linear = nn.Linear(cfg.virtual * t * D, n_out)

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, ...] -> [B, V, ...]: the spatial filter."""
        return torch.einsum("vc,bc...->bv...", self.spatial, x)

    def forward(self, encoder: TokenEncoder, inputs: torch.Tensor) -> torch.Tensor:
        tok = encoder.tokenizer
        if self.kind == "pre_local":
            feats = tok.local(self.mix(inputs))  # [B, V, t, D]
        else:
            local = tok.local(inputs) if self.kind == "post_local" else encoder(inputs).view(len(inputs), self.C, -1, encoder.d_model)
            feats = self.mix(local)  # [B, V, t, D]
        return self.linear(feats.flatten(1))  # [B, n_out]


for _kind in ("contextual", "post_local", "pre_local"):
    HEADS.register(_kind, SignalHeadConfig)(SignalHead)
