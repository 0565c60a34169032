"""The transformer stack shared by the SSL encoder, the JEPA predictor and the MAE decoder, and token gathering.

`Blocks` is `n_layers` of the transformer's own pre-norm `Block` (baselines/models/transformer.py) with the
`none` position encoding (bidirectional attention, no position signal inside attention: positions are added
to the tokens beforehand, by a positional encoding of the layout) followed by a final LayerNorm.
"""

from __future__ import annotations

import torch
from torch import nn

from baselines.models.position import PositionEncoding
from baselines.models.transformer import Block, TransformerConfig


def gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x [B, N, D], index [B, K] long -> x[b, index[b, k]] as [B, K, D]."""
    return torch.gather(x, 1, index[..., None].expand(-1, -1, x.shape[-1]))  # [B, K, D]


def gather_targets(tokens: torch.Tensor, target_idx: torch.Tensor) -> torch.Tensor:
    """tokens [B, N, D] at every position, target_idx [B, M, Nt] -> the target blocks' tokens [B, M, Nt, D]."""
    B, M, Nt = target_idx.shape
    return gather_tokens(tokens, target_idx.reshape(B, M * Nt)).view(B, M, Nt, tokens.shape[-1])  # [B, M, Nt, D]


class Blocks(nn.Module):
    def __init__(self, d_model: int, n_layers: int, n_heads: int, d_ff: int | None, dropout: float) -> None:
        super().__init__()
        cfg = TransformerConfig(
            name="transformer", d_model=d_model, n_layers=n_layers, n_heads=n_heads, d_ff=d_ff,
            dropout=dropout, pos_emb="none", causal=False,
        )
        self.nope = PositionEncoding()  # adds nothing, rotates nothing, no bias
        self.blocks = nn.ModuleList(Block(cfg, layer) for layer in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(x.shape[1], device=x.device)  # [T] (unused by the `none` encoding)
        for block in self.blocks:
            x = block(x, positions, self.nope)  # [B, T, D]
        return self.ln_f(x)  # [B, T, D]
