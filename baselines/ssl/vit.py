"""A small Vision Transformer over image patches, as the context/target encoder of I-JEPA and the encoder of MAE.

    images [B, C, H, W] -> patchify -> linear patch embedding + fixed 2-D sin-cos position -> keep a subset
    of patches -> pre-norm transformer blocks -> final LayerNorm -> tokens [B, N', D]

`forward(images, keep)` encodes only the kept patches (`keep` [B, N'] long, row-major patch indices on the
grid x grid patch grid; None = all N patches): the dropped patches are removed before the first block, so
they cannot influence the kept tokens (I-JEPA's context encoder, MAE's encoder on visible patches).

The blocks are the transformer's own `Block` (baselines/models/transformer.py) with the `none` position
encoding: positions enter once, as the absolute 2-D sin-cos embedding added to the patch embeddings, and
attention is bidirectional.  `Blocks` (the stack + final norm) is shared with the JEPA predictor and the MAE
decoder (baselines/ssl/heads.py).
"""

from __future__ import annotations

import torch
from pydantic import Field, field_validator
from torch import nn

from baselines.models.position import PositionEncoding
from baselines.models.transformer import Block, TransformerConfig, init_weights
from baselines.tasks.images import image_task
from harness.components import MODELS, Task
from harness.registry import ComponentConfig, must_divide


class ViTConfig(ComponentConfig):
    patch_size: int = Field(default=2, ge=1)  # must divide the task's image_size
    d_model: int = Field(default=64, ge=4)  # a multiple of 4 (2-D sin-cos: sin/cos of rows and of columns)
    n_layers: int = Field(default=2, ge=1)
    n_heads: int = Field(default=4, ge=1)
    d_ff: int | None = Field(default=None, ge=1)  # None -> 4 * d_model
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)

    @field_validator("d_model")
    @classmethod
    def _sincos_width(cls, value: int) -> int:
        if value % 4:
            raise ValueError(f"d_model={value} must be a multiple of 4 (2-D sin-cos position embedding)")
        return value

    _heads_divide = must_divide("n_heads", "d_model")


# ----------------------------------------------------------------------------------------------
# patches and positions


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """images [B, C, H, W] -> patches [B, N, patch*patch*C], N = (H/patch)*(W/patch), patches row-major."""
    B, C, H, W = images.shape
    gh, gw = H // patch, W // patch
    x = images.reshape(B, C, gh, patch, gw, patch)  # [B, C, gh, p, gw, p]
    x = x.permute(0, 2, 4, 3, 5, 1)  # [B, gh, gw, p, p, C]
    return x.reshape(B, gh * gw, patch * patch * C)  # [B, N, p*p*C]


def sincos_1d(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """positions [T] float -> [T, dim]: sin(pos * w_i) for the first half, cos for the second,
    w_i = 10000^(-i / (dim/2)), i = 0 .. dim/2 - 1."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))  # [dim/2]
    angles = positions.to(torch.float64)[:, None] * omega[None, :]  # [T, dim/2]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()  # [T, dim]


def sincos_2d(grid: int, dim: int) -> torch.Tensor:
    """Fixed 2-D sin-cos embedding of a grid x grid patch grid (MAE / I-JEPA): [grid*grid, dim], row-major;
    the first dim/2 features encode the row, the last dim/2 the column."""
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")  # [g, g] each
    return torch.cat([sincos_1d(rows.flatten(), dim // 2), sincos_1d(cols.flatten(), dim // 2)], dim=1)  # [g*g, dim]


def gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x [B, N, D], index [B, K] long -> x[b, index[b, k]] as [B, K, D]."""
    return torch.gather(x, 1, index[..., None].expand(-1, -1, x.shape[-1]))  # [B, K, D]


# ----------------------------------------------------------------------------------------------
# the transformer stack shared by the encoder, the JEPA predictor and the MAE decoder


class Blocks(nn.Module):
    """`n_layers` of the transformer's pre-norm `Block` (bidirectional, no position signal inside attention:
    positions are added to the tokens beforehand) followed by a final LayerNorm."""

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


# ----------------------------------------------------------------------------------------------
# the encoder


class ViT(nn.Module):
    def __init__(self, cfg: ViTConfig, channels: int, image_size: int) -> None:
        super().__init__()
        if image_size % cfg.patch_size:
            raise ValueError(f"patch_size={cfg.patch_size} must divide image_size={image_size}")
        self.cfg = cfg
        self.channels = channels
        self.patch_size = cfg.patch_size
        self.grid = image_size // cfg.patch_size  # patches per side
        self.n_patches = self.grid * self.grid
        self.patch_dim = cfg.patch_size * cfg.patch_size * channels  # pixels per patch
        self.d_model = cfg.d_model
        self.patch_embed = nn.Linear(self.patch_dim, cfg.d_model)
        self.register_buffer("pos", sincos_2d(self.grid, cfg.d_model), persistent=False)  # [N, D], fixed
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = Blocks(cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.d_ff, cfg.dropout)
        init_weights(self, cfg.n_layers)
        # MAE / I-JEPA: the patch embedding gets a Xavier init, so that at init the patch content is not
        # drowned by the unit-amplitude sin-cos positions (N(0, 0.02) over a few pixels would be)
        nn.init.xavier_uniform_(self.patch_embed.weight)

    def forward(self, images: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        x = self.patch_embed(patchify(images, self.patch_size))  # [B, N, D]
        x = x + self.pos  # [B, N, D]
        if keep is not None:
            x = gather_tokens(x, keep)  # [B, N', D]: only the kept patches enter the blocks
        return self.blocks(self.drop(x))  # [B, N', D]


@MODELS.register("vit", ViTConfig)
def build(cfg: ViTConfig, task: Task) -> ViT:
    images = image_task(task, "model vit")
    return ViT(cfg, channels=images.channels, image_size=images.image_size)
