"""An LSTM language-model baseline: embedding -> nn.LSTM (n_layers) -> LayerNorm -> head.

forward(inputs [B, T] long) -> logits [B, T, V];  step(token [B], state) -> (logits [B, V], state),
state = (h, c), each [n_layers, B, d_model].  Causal by construction.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from harness.components import MODELS, Task, token_task
from harness.registry import ComponentConfig


class LSTMConfig(ComponentConfig):
    d_model: int = Field(default=64, ge=1)
    n_layers: int = Field(default=3, ge=1)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)  # on the embedding and between LSTM layers


class LSTM(nn.Module):
    linear_in_length = True  # every position costs the same (harness.components.length_sized)

    def __init__(self, cfg: LSTMConfig, vocab_size: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(vocab_size, cfg.d_model)
        nn.init.normal_(self.tok.weight, std=0.02)
        self.drop = nn.Dropout(cfg.dropout)
        self.lstm = nn.LSTM(cfg.d_model, cfg.d_model, cfg.n_layers, batch_first=True, dropout=cfg.dropout)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, vocab_size, bias=False)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(self.drop(self.tok(inputs)))  # [B, T, C]
        return self.head(self.norm(y))  # [B, T, V]

    def init_state(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.tok.weight.new_zeros(self.cfg.n_layers, batch_size, self.cfg.d_model)
        return h, h.clone()

    def step(self, token: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        y, state = self.lstm(self.drop(self.tok(token)).unsqueeze(1), state)  # [B, 1, C]
        return self.head(self.norm(y[:, 0])), state  # [B, V]


@MODELS.register("lstm", LSTMConfig)
def build(cfg: LSTMConfig, task: Task) -> LSTM:
    return LSTM(cfg, vocab_size=token_task(task, "model lstm").vocab_size)
