"""A small transformer decoder that generates text from an encoder's tokens: UI-JEPA's intent decoder (the paper
fine-tunes an LLM, Phi-3 by a third-party account; here a 2-layer decoder of width 32 stands in for it).

    TextDecoder(tokens [B, T] long, memory [B, N, D_enc]) -> logits [B, T, V]
        token embedding + learned positions -> n_layers pre-norm decoder layers (causal self-attention, then
        cross-attention to the memory projected to the decoder width) -> LayerNorm -> vocabulary logits.
        The causal mask makes the output at t a function of tokens[:, :t + 1] and the memory only.
    teacher_forcing(texts [B, L]) -> (inputs [B, L-1], targets [B, L-1])   inputs = texts without the last
        token, targets = texts without the first: the decoder learns to predict token t + 1 from tokens <= t
    greedy(decoder, memory, bos, length) -> [B, length]   argmax decoding from <bos> (position 0)
    token_f1(pred [S, L], ref [S, L], content) -> [S]      bag-of-tokens F1 of the content tokens (all but
        <pad>, <bos>, <eos>): order-blind, so a generation with two steps swapped scores 1 but is no exact match
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn


class TextDecoder(nn.Module):
    def __init__(self, vocab_size: int, max_len: int, d_memory: int, d_model: int, n_layers: int, n_heads: int,
                 d_ff: int | None) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Parameter(0.02 * torch.randn(max_len, d_model))  # [L, d]
        self.memory_proj = nn.Linear(d_memory, d_model)
        layer = nn.TransformerDecoderLayer(d_model, n_heads, dim_feedforward=d_ff or 4 * d_model, dropout=0.0,
                                           batch_first=True, norm_first=True)  # dim_feedforward explicit (default 2048)
        self.layers = nn.TransformerDecoder(layer, n_layers)
        self.ln = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, vocab_size)

    def forward(self, tokens: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        T = tokens.shape[1]
        x = self.embed(tokens) + self.pos[:T]  # [B, T, d]
        causal = torch.triu(torch.full((T, T), float("-inf"), device=tokens.device), diagonal=1)  # [T, T]
        y = self.layers(x, self.memory_proj(memory), tgt_mask=causal)  # [B, T, d]
        return self.out(self.ln(y))  # [B, T, V]


def teacher_forcing(texts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """texts [B, L] -> (inputs [B, L-1], targets [B, L-1]): the right-shifted pair of teacher forcing."""
    return texts[:, :-1], texts[:, 1:]


@torch.no_grad()
def greedy(decoder: TextDecoder, memory: torch.Tensor, bos: int, length: int) -> torch.Tensor:
    """Argmax decoding: [B, length] token ids, position 0 = <bos>."""
    tokens = torch.full((memory.shape[0], 1), bos, dtype=torch.long, device=memory.device)  # [B, 1]
    for _ in range(length - 1):
        step = decoder(tokens, memory)[:, -1].argmax(dim=-1, keepdim=True)  # [B, 1]
        tokens = torch.cat([tokens, step], dim=1)
    return tokens  # [B, length]


def until_eos(ids: list[int], eos: int) -> list[int]:
    return ids[:ids.index(eos)] if eos in ids else ids


def token_f1(pred: torch.Tensor, ref: torch.Tensor, special: set[int], eos: int) -> torch.Tensor:
    """Bag-of-tokens F1 per row of pred, ref [S, L] (each cut at its first <eos>, `special` tokens dropped): [S]."""
    scores = []
    for p, r in zip(pred.tolist(), ref.tolist()):
        p = Counter(t for t in until_eos(p, eos) if t not in special)
        r = Counter(t for t in until_eos(r, eos) if t not in special)
        common = sum((p & r).values())
        scores.append(0.0 if common == 0 else 2 * common / (sum(p.values()) + sum(r.values())))
    return torch.tensor(scores, dtype=torch.float64)
