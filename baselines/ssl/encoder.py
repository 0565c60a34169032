"""The token encoder of every SSL method: the context/target encoder of JEPA, the encoder of MAE.

    inputs -> tokenizer (content embeddings [B, N, D]) + positional encoding of the layout -> keep a subset
    of the tokens -> prepend n_reg learned [REG] tokens -> pre-norm transformer blocks -> final LayerNorm
    -> drop the [REG] outputs -> tokens [B, N', D]

`forward(inputs, layout, keep)` encodes only the kept tokens (`keep` [B, N'] long, indices into the
layout's N tokens; None = all): the dropped tokens are removed before the first block, so they cannot
influence the kept ones (I-JEPA's context encoder, MAE's encoder on visible patches).  [REG] tokens (T-JEPA's
regularization tokens; Darcet et al.'s registers) are not in the layout, so no mask sampler can pick them:
they are in every context, never a target, and dropped before the predictor and before probing.

Registered models:
    token_encoder   any tokenizer (`tokenizer`), any positional encoding (`pos`), `n_reg` [REG] tokens
    vit             the image preset: square `patch_size` patches (patch2d) with 2-D sin-cos positions
"""

from __future__ import annotations

import torch
from pydantic import Field, field_validator
from torch import nn

from baselines.models.transformer import init_weights
from baselines.ssl.blocks import Blocks, gather_tokens
from baselines.ssl.layout import Layout
from baselines.ssl.positions import POS_ENCODINGS, SinCosConfig, build_positional
from baselines.ssl.registered import Registered
from baselines.ssl.tokenizers import TOKENIZERS, Patch2dConfig, build_tokenizer
from baselines.tasks.images import image_task
from baselines.tasks.labeled import LabeledTask, labeled_task
from harness.components import MODELS, Task
from harness.registry import ComponentConfig, must_divide
from harness.train.optim import no_weight_decay


class TokenEncoder(nn.Module):
    def __init__(
        self, tokenizer_cfg: ComponentConfig, pos_cfg: ComponentConfig, task: LabeledTask, d_model: int,
        n_layers: int, n_heads: int, d_ff: int | None, dropout: float, n_reg: int,
    ) -> None:
        super().__init__()
        self.tokenizer = build_tokenizer(tokenizer_cfg, task, d_model)
        self.layout = self.tokenizer.layout
        self.pos_cfg = pos_cfg  # the predictor / decoder build their own encoding from it
        self.pos = build_positional(pos_cfg, d_model, self.layout)
        self.d_model, self.n_reg = d_model, n_reg
        self.drop = nn.Dropout(dropout)
        self.blocks = Blocks(d_model, n_layers, n_heads, d_ff, dropout)
        init_weights(self, n_layers)
        self.tokenizer.init_embedding()
        self.pos.init_embedding()
        self.reg = nn.Parameter(0.02 * torch.randn(1, n_reg, d_model)) if n_reg else None  # [1, R, D]
        if self.reg is not None:
            no_weight_decay(self.reg)  # embeddings, not weight matrices

    def forward(self, inputs: torch.Tensor, layout: Layout | None = None, keep: torch.Tensor | None = None) -> torch.Tensor:
        layout = self.tokenizer.layout_of(inputs) if layout is None else layout
        x = self.tokenizer(inputs, layout) + self.pos(layout)  # [B, N, D]
        if keep is not None:
            x = gather_tokens(x, keep)  # [B, N', D]: only the kept tokens enter the blocks
        if self.reg is not None:
            x = torch.cat([self.reg.expand(x.shape[0], -1, -1), x], dim=1)  # [B, R + N', D]
        return self.blocks(self.drop(x))[:, self.n_reg:]  # [B, N', D]: [REG] outputs dropped


def token_encoder(model: nn.Module, user: str) -> TokenEncoder:
    """The model as a TokenEncoder, or a clear error naming the method that needs one."""
    if not isinstance(model, TokenEncoder):
        raise TypeError(f"{user} needs a token encoder model (token_encoder, vit); {type(model).__name__} is not one")
    return model


class EncoderConfig(ComponentConfig):
    tokenizer: Registered(TOKENIZERS) = Field(default_factory=Patch2dConfig)
    pos: Registered(POS_ENCODINGS) = Field(default_factory=SinCosConfig)
    d_model: int = Field(default=64, ge=4)
    n_layers: int = Field(default=2, ge=1)
    n_heads: int = Field(default=4, ge=1)
    d_ff: int | None = Field(default=None, ge=1)  # None -> 4 * d_model
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    n_reg: int = Field(default=0, ge=0)  # [REG] tokens, always in the context, never a target

    _heads_divide = must_divide("n_heads", "d_model")


@MODELS.register("token_encoder", EncoderConfig)
def build_token_encoder(cfg: EncoderConfig, task: Task) -> TokenEncoder:
    task = labeled_task(task, "model token_encoder")
    return TokenEncoder(cfg.tokenizer, cfg.pos, task, cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.d_ff, cfg.dropout, cfg.n_reg)


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


@MODELS.register("vit", ViTConfig)
def build_vit(cfg: ViTConfig, task: Task) -> TokenEncoder:
    images = image_task(task, "model vit")
    if images.image_size % cfg.patch_size:
        raise ValueError(f"patch_size={cfg.patch_size} must divide image_size={images.image_size}")
    patch = Patch2dConfig(patch=(cfg.patch_size, cfg.patch_size))
    return TokenEncoder(patch, SinCosConfig(), images, cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.d_ff, cfg.dropout, 0)
