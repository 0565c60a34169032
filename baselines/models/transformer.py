"""A small pre-norm transformer (nanoGPT-like), encoder-only (bidirectional) or decoder-only (causal).

forward(inputs [B, T] long, positions [T] long | None) -> logits [B, T, V].
The position encoding is pluggable (see `baselines.models.position`): `pos_emb` names a POSITIONS entry.
One PositionEncoding module is shared by all layers (it holds per-layer tables where a variant needs them).
Attention logits are computed explicitly (as fast as F.scaled_dot_product_attention with a float mask on
CPU at these sizes, and easier to read); the causal mask is an additive -inf bias.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from baselines.models.position import POSITIONS, PositionConfig, PositionEncoding, build_position
from harness.components import MODELS, Task, token_task
from harness.registry import ComponentConfig, did_you_mean, must_divide


class TransformerConfig(ComponentConfig):
    d_model: int = Field(default=64, ge=1)
    n_layers: int = Field(default=2, ge=1)
    n_heads: int = Field(default=4, ge=1)
    d_ff: int | None = Field(default=None, ge=1)  # None -> 4 * d_model
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    pos_emb: str = "abs"  # a POSITIONS name: abs, rel_k, rel_kq, rope, alibi, hard_alibi, none
    rel_clip: int = Field(default=16, ge=1)  # clip distance of rel_k / rel_kq
    causal: bool = False  # False: encoder-only (bidirectional); True: decoder-only

    @field_validator("pos_emb")
    @classmethod
    def _known_position(cls, value: str) -> str:
        if value not in POSITIONS:
            known = POSITIONS.names()
            raise ValueError(
                f"unknown position embedding '{value}'{did_you_mean(value, known)} (known: {', '.join(known)})"
            )
        return value

    _heads_divide = must_divide("n_heads", "d_model")


class SelfAttention(nn.Module):
    def __init__(self, cfg: TransformerConfig, layer: int) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout
        self.causal = cfg.causal
        self.scale = 1.0 / math.sqrt(cfg.d_model // cfg.n_heads)
        self.layer = layer  # selects this layer's parameters inside the (shared) position encoding

    def forward(self, x: torch.Tensor, positions: torch.Tensor, pos: PositionEncoding) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # [B, T, C] each
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))  # [B, H, T, hd]
        q, k = pos.rotate(q, k, positions, self.layer)
        bias = pos.logit_bias(q, k, positions, self.layer)  # broadcastable to [B, H, T, T] or None
        if self.causal:
            future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)  # [T, T]
            mask = torch.zeros(T, T, dtype=q.dtype, device=x.device).masked_fill(future, float("-inf"))
            bias = mask if bias is None else bias + mask
        att = (q @ k.transpose(-2, -1)) * self.scale  # [B, H, T, T]
        if bias is not None:
            att = att + bias
        att = F.dropout(att.softmax(dim=-1), self.dropout, self.training)
        y = att @ v  # [B, H, T, hd]
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # [B, T, C]
        return F.dropout(self.proj(y), self.dropout, self.training)


class MLP(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        d_ff = cfg.d_ff if cfg.d_ff is not None else 4 * cfg.d_model
        self.fc = nn.Linear(cfg.d_model, d_ff)
        self.proj = nn.Linear(d_ff, cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))  # [B, T, C]


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig, layer: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg, layer)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, positions: torch.Tensor, pos: PositionEncoding) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), positions, pos)
        return x + self.mlp(self.ln2(x))


def _init_leaf(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)


def init_weights(module: nn.Module, n_layers: int) -> None:
    """GPT-2 init: N(0, 0.02) linears and embeddings, zero biases, residual projections scaled by 1/sqrt(2L)."""
    module.apply(_init_leaf)
    for name, p in module.named_parameters():
        if name.endswith("proj.weight"):
            nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layers))


class Transformer(nn.Module):
    def __init__(self, cfg: TransformerConfig, vocab_size: int, max_len: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.max_len = max_len
        self.tok = nn.Embedding(vocab_size, cfg.d_model)
        self.pos = build_position(
            PositionConfig(
                name=cfg.pos_emb,
                d_model=cfg.d_model,
                n_heads=cfg.n_heads,
                n_layers=cfg.n_layers,
                max_len=max_len,
                rel_clip=cfg.rel_clip,
            )
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, layer) for layer in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, vocab_size, bias=False)
        init_weights(self, cfg.n_layers)

    def forward(self, inputs: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        B, T = inputs.shape
        if positions is None:
            positions = torch.arange(T, device=inputs.device)  # [T]
        x = self.tok(inputs)  # [B, T, C]
        added = self.pos.embed(positions)  # [T, C] or None
        if added is not None:
            x = x + added
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, positions, self.pos)
        return self.head(self.ln_f(x))  # [B, T, V]


@MODELS.register("transformer", TransformerConfig)
def build(cfg: TransformerConfig, task: Task) -> Transformer:
    tokens = token_task(task, "model transformer")
    return Transformer(cfg, vocab_size=tokens.vocab_size, max_len=tokens.max_len)
