"""The heads that sit on top of the ViT encoder: the narrow I-JEPA predictor and the light MAE decoder.

Both are a `Blocks` stack (transformer blocks + final norm, baselines/ssl/vit.py) that sees the encoder's
tokens projected to its own width plus one learned mask token per position to be predicted; a mask token
carries its position only through the fixed 2-D sin-cos embedding added to it.

    JEPAPredictor(context tokens [B, Nc, D], context_idx [B, Nc], target_idx [B, M, Nt]) -> [B, M, Nt, D]
        one pass per target block (the context is repeated M times, as in I-JEPA), the output at the mask
        tokens projected back to the encoder width D.
    MAEDecoder(visible tokens [B, Nv, D], visible_idx [B, Nv], masked_idx [B, Nm]) -> pixels [B, Nm, P]
        P = patch_size^2 * channels; the prediction for each masked patch.

Nothing here looks at pixels: what the heads can use is the encoder's output on the context/visible patches.
"""

from __future__ import annotations

import torch
from torch import nn

from baselines.models.transformer import init_weights
from baselines.ssl.vit import Blocks, gather_tokens, sincos_2d
from harness.train.optim import no_weight_decay


class MaskTokenHead(nn.Module):
    """What the predictor and the decoder share: encoder width -> head width, a learned mask token, fixed
    sin-cos positions at head width, and the transformer stack."""

    def __init__(self, d_encoder: int, d_model: int, n_layers: int, n_heads: int, d_ff: int | None, grid: int) -> None:
        super().__init__()
        if d_model % 4:
            raise ValueError(f"head width {d_model} must be a multiple of 4 (2-D sin-cos position embedding)")
        self.embed = nn.Linear(d_encoder, d_model)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d_model))  # [1, 1, d]
        self.register_buffer("pos", sincos_2d(grid, d_model), persistent=False)  # [N, d], fixed
        self.blocks = Blocks(d_model, n_layers, n_heads, d_ff, dropout=0.0)
        init_weights(self, n_layers)
        nn.init.normal_(self.mask_token, std=0.02)
        no_weight_decay(self.mask_token)  # an embedding, not a weight matrix

    def positions(self, index: torch.Tensor) -> torch.Tensor:
        """index [B, K] long -> sin-cos embeddings [B, K, d]."""
        return self.pos[index]  # [B, K, d]

    def run(self, tokens: torch.Tensor, token_idx: torch.Tensor, query_idx: torch.Tensor) -> torch.Tensor:
        """tokens [B, K, D] at positions token_idx [B, K]; one mask token per query_idx [B, Q] position.
        Returns the head's output at the mask tokens, [B, Q, d]."""
        x = self.embed(tokens) + self.positions(token_idx)  # [B, K, d]
        B, Q = query_idx.shape
        queries = self.mask_token.expand(B, Q, -1) + self.positions(query_idx)  # [B, Q, d]
        y = self.blocks(torch.cat([x, queries], dim=1))  # [B, K + Q, d]
        return y[:, x.shape[1]:]  # [B, Q, d]


class JEPAPredictor(nn.Module):
    def __init__(self, d_encoder: int, d_model: int, n_layers: int, n_heads: int, d_ff: int | None, grid: int) -> None:
        super().__init__()
        self.head = MaskTokenHead(d_encoder, d_model, n_layers, n_heads, d_ff, grid)
        self.out = nn.Linear(d_model, d_encoder)  # back to the encoder width
        nn.init.normal_(self.out.weight, std=0.02)
        nn.init.zeros_(self.out.bias)

    def forward(self, context: torch.Tensor, context_idx: torch.Tensor, target_idx: torch.Tensor) -> torch.Tensor:
        B, Nc, D = context.shape
        _, M, Nt = target_idx.shape
        ctx = context.repeat_interleave(M, dim=0)  # [B*M, Nc, D]: each target block gets its own pass
        ctx_idx = context_idx.repeat_interleave(M, dim=0)  # [B*M, Nc]
        y = self.head.run(ctx, ctx_idx, target_idx.reshape(B * M, Nt))  # [B*M, Nt, d]
        return self.out(y).view(B, M, Nt, D)  # [B, M, Nt, D]


class MAEDecoder(nn.Module):
    def __init__(
        self, d_encoder: int, d_model: int, n_layers: int, n_heads: int, d_ff: int | None, grid: int, patch_dim: int
    ) -> None:
        super().__init__()
        self.head = MaskTokenHead(d_encoder, d_model, n_layers, n_heads, d_ff, grid)
        self.out = nn.Linear(d_model, patch_dim)  # pixels of one patch
        nn.init.normal_(self.out.weight, std=0.02)
        nn.init.zeros_(self.out.bias)

    def forward(self, visible: torch.Tensor, visible_idx: torch.Tensor, masked_idx: torch.Tensor) -> torch.Tensor:
        y = self.head.run(visible, visible_idx, masked_idx)  # [B, Nm, d]
        return self.out(y)  # [B, Nm, P]


def gather_targets(tokens: torch.Tensor, target_idx: torch.Tensor) -> torch.Tensor:
    """tokens [B, N, D] at every patch, target_idx [B, M, Nt] -> the target blocks' tokens [B, M, Nt, D]."""
    B, M, Nt = target_idx.shape
    return gather_tokens(tokens, target_idx.reshape(B, M * Nt)).view(B, M, Nt, tokens.shape[-1])  # [B, M, Nt, D]
