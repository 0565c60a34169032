"""The language-model shell shared by the layered GSSMs (Mamba, S4D): embed -> layers -> norm -> head.

Each layer maps [B, T, C] -> [B, T, C] in parallel (training) and offers the recurrent twin
`init_state(batch_size)` / `step(x [B, C], state) -> (y [B, C], state)` for generation."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn


class RecurrentStack(nn.Module):
    def __init__(self, vocab_size: int, d_model: int, layers: Iterable[nn.Module], norm_f: nn.Module) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab_size, d_model)
        nn.init.normal_(self.tok.weight, std=0.02)
        self.layers = nn.ModuleList(layers)
        self.norm_f = norm_f
        self.head = nn.Linear(d_model, vocab_size, bias=False)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = self.tok(inputs)  # [B, T, C]
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm_f(x))  # [B, T, V]

    def init_state(self, batch_size: int) -> list[Any]:
        return [layer.init_state(batch_size) for layer in self.layers]

    def step(self, token: torch.Tensor, state: list[Any]) -> tuple[torch.Tensor, list[Any]]:
        x = self.tok(token)  # [B, C]
        new_state = []
        for layer, s in zip(self.layers, state):
            x, s = layer.step(x, s)
            new_state.append(s)
        return self.head(self.norm_f(x)), new_state  # [B, V]
