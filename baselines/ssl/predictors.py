"""Predictors: from the context encoder's tokens to a prediction at every target position.

    predictor(context [B, Nc, D], context_idx [B, Nc], target_idx [B, M, Nt], layout) -> [B, M, Nt, d_out]

d_out is the encoder width D for JEPA (latent targets) and the token content size P for MAE (the decoder is
a predictor of pixels).  The queries of the target positions carry the positional encoding of those
positions (the encoder's encoding config, built at the predictor's width): without it a predictor cannot
tell which token to predict (the S-JEPA third-party bug).

Registered in PREDICTORS; a builder gets (cfg, d_in, d_out, encoder_pos_cfg, layout).

    concat   (I-JEPA) the context tokens projected to the predictor width plus one learned mask token per
             target position, through a narrow transformer; the outputs at the mask tokens are projected to
             d_out.  joint=False: one pass per target block, the context repeated M times (I-JEPA);
             joint=True: every target token in one pass (MAE's decoder).

A context-aware decoder (3D-JEPA: cross-attention to the fixed context in every layer) or a query decoder
(ACT-JEPA) is another class and one `@PREDICTORS.register`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from baselines.models.transformer import init_weights
from baselines.ssl.blocks import Blocks
from baselines.ssl.layout import Layout
from baselines.ssl.positions import build_positional, positions_at
from harness.registry import ComponentConfig, Registry, must_divide
from harness.train.optim import no_weight_decay

PredictorBuilder = Callable[[ComponentConfig, int, int, ComponentConfig, Layout], nn.Module]
PREDICTORS: Registry[PredictorBuilder] = Registry("predictor")


def build_predictor(cfg: ComponentConfig, d_in: int, d_out: int, pos_cfg: ComponentConfig, layout: Layout) -> nn.Module:
    return PREDICTORS.get(cfg.name).build(cfg, d_in, d_out, pos_cfg, layout)


class ConcatPredictorConfig(ComponentConfig):
    name: Literal["concat"] = "concat"
    d_model: int = Field(default=32, ge=4)  # narrower than the encoder
    n_layers: int = Field(default=2, ge=1)
    n_heads: int = Field(default=4, ge=1)
    d_ff: int | None = Field(default=None, ge=1)  # None -> 4 * d_model
    joint: bool = False  # True: all target blocks in one pass; False: one pass per block

    _heads_divide = must_divide("n_heads", "d_model")


class MaskTokenHead(nn.Module):
    """Input width -> head width, a learned mask token, positions at head width, the transformer stack."""

    def __init__(self, cfg: ConcatPredictorConfig, d_in: int, pos_cfg: ComponentConfig, layout: Layout) -> None:
        super().__init__()
        self.embed = nn.Linear(d_in, cfg.d_model)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.d_model))  # [1, 1, d]
        self.pos = build_positional(pos_cfg, cfg.d_model, layout)
        self.blocks = Blocks(cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.d_ff, dropout=0.0)
        init_weights(self, cfg.n_layers)
        self.pos.init_embedding()
        nn.init.normal_(self.mask_token, std=0.02)
        no_weight_decay(self.mask_token)  # an embedding, not a weight matrix

    def run(self, tokens: torch.Tensor, token_pos: torch.Tensor, query_pos: torch.Tensor) -> torch.Tensor:
        """tokens [B, K, d_in] with positions token_pos [B, K, d]; one mask token per query position
        query_pos [B, Q, d].  Returns the head's output at the mask tokens, [B, Q, d]."""
        x = self.embed(tokens) + token_pos  # [B, K, d]
        queries = self.mask_token.expand(*query_pos.shape[:2], -1) + query_pos  # [B, Q, d]
        y = self.blocks(torch.cat([x, queries], dim=1))  # [B, K + Q, d]
        return y[:, x.shape[1]:]  # [B, Q, d]


class ConcatPredictor(nn.Module):
    def __init__(self, cfg: ConcatPredictorConfig, d_in: int, d_out: int, pos_cfg: ComponentConfig, layout: Layout) -> None:
        super().__init__()
        self.joint = cfg.joint
        self.head = MaskTokenHead(cfg, d_in, pos_cfg, layout)
        self.out = nn.Linear(cfg.d_model, d_out)
        nn.init.normal_(self.out.weight, std=0.02)
        nn.init.zeros_(self.out.bias)

    def forward(self, context: torch.Tensor, context_idx: torch.Tensor, target_idx: torch.Tensor, layout: Layout) -> torch.Tensor:
        B, M, Nt = target_idx.shape
        table = self.head.pos(layout)  # [N, d] or [B, N, d]
        ctx_pos = positions_at(table, context_idx)  # [B, Nc, d]
        tgt_pos = positions_at(table, target_idx.reshape(B, M * Nt))  # [B, M*Nt, d]
        if self.joint:
            y = self.head.run(context, ctx_pos, tgt_pos)  # [B, M*Nt, d]
        else:  # each target block gets its own pass over the (repeated) context
            ctx = context.repeat_interleave(M, dim=0)  # [B*M, Nc, D]
            y = self.head.run(ctx, ctx_pos.repeat_interleave(M, dim=0), tgt_pos.reshape(B * M, Nt, -1))  # [B*M, Nt, d]
        return self.out(y).reshape(B, M, Nt, -1)  # [B, M, Nt, d_out]


PREDICTORS.register("concat", ConcatPredictorConfig)(ConcatPredictor)
