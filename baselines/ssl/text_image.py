"""Text and image tokens of a captioned image, two unimodal towers and TI-JEPA's text-to-image fusion
(arXiv 2503.06380).  Inputs are packed rows [B, H*W + L] (baselines/tasks/text_image.py, `ImageTextInput`).

    image_part  (TOKENIZERS) patch2d's patches of the image part, axes ("row", "col")
    caption     (TOKENIZERS) one token per word: an embedding of its id; layout ("position",) of length L
    two_tower   (MODELS) an image TokenEncoder and a text TokenEncoder, independent (`image`, `text`): what the
                unimodal pre-training (method pair_jepa) trains
    ti_fusion   (MODELS) the two towers plus `fusion_layers` fusion blocks (nn.TransformerDecoderLayer, pre-norm,
                not causal): image tokens self-attend, then cross-attend to the text tokens (text -> image),
                then an MLP.  forward(inputs, layout, keep) -> [B, N', D] fused tokens of the kept image tokens
                (keep: indices into the image layout), so the JEPA method predicts image target blocks from a
                text-conditioned context.  `text: false` (the text-removed control) attends to one learned
                "no text" token instead of the caption.  Its `tokenizer`, `layout` and `pos_cfg` are the image
                tower's (mask samplers and the predictor see image tokens only).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from baselines.ssl.encoder import EncoderConfig, TokenEncoder
from baselines.ssl.layout import Layout
from baselines.ssl.tokenizers import TOKENIZERS, Tokenizer, patchify
from baselines.tasks.labeled import LabeledTask, labeled_task
from baselines.tasks.text_image import ImageTextInput
from harness.components import MODELS, Task
from harness.registry import ComponentConfig


def text_image_input(task: LabeledTask, user: str) -> ImageTextInput:
    spec = labeled_task(task, user).input_spec
    if not isinstance(spec, ImageTextInput):
        raise TypeError(f"{user} needs captioned images (synth_text_image); {type(task).__name__} has {type(spec).__name__}")
    return spec


def image_of(inputs: torch.Tensor, spec: ImageTextInput) -> torch.Tensor:
    """Packed rows [B, H*W + L] -> images [B, 1, H, W]."""
    H, W = spec.size
    return inputs[:, :H * W].reshape(-1, 1, H, W)


def words_of(inputs: torch.Tensor, spec: ImageTextInput) -> torch.Tensor:
    """Packed rows [B, H*W + L] -> word ids [B, L] long."""
    return inputs[:, spec.size[0] * spec.size[1]:].round().long()


class ImagePartConfig(ComponentConfig):
    name: Literal["image_part"] = "image_part"
    patch: tuple[int, int] = (4, 4)


class ImagePart(Tokenizer):
    def __init__(self, patch: tuple[int, int], spec: ImageTextInput, d_model: int) -> None:
        super().__init__()
        (H, W), (ph, pw) = spec.size, patch
        if H % ph or W % pw:
            raise ValueError(f"patch {patch} must divide the {H} x {W} images")
        self.spec, self.patch = spec, patch
        self.layout = Layout.grid(("row", "col"), (H // ph, W // pw))
        self.content_dim = ph * pw
        self.embed = nn.Linear(self.content_dim, d_model)

    def forward(self, inputs: torch.Tensor, layout: Layout) -> torch.Tensor:
        return self.embed(self.content(inputs, layout))  # [B, N, D]

    def content(self, inputs: torch.Tensor, layout: Layout) -> torch.Tensor:
        return patchify(image_of(inputs, self.spec), self.patch)  # [B, N, ph*pw]

    def init_embedding(self) -> None:
        nn.init.xavier_uniform_(self.embed.weight)


@TOKENIZERS.register("image_part", ImagePartConfig)
def build_image_part(cfg: ImagePartConfig, task: LabeledTask, d_model: int) -> ImagePart:
    return ImagePart(cfg.patch, text_image_input(task, "tokenizer image_part"), d_model)


class CaptionConfig(ComponentConfig):
    name: Literal["caption"] = "caption"


class Caption(Tokenizer):
    def __init__(self, spec: ImageTextInput, d_model: int) -> None:
        super().__init__()
        self.spec = spec
        self.layout = Layout.grid(("position",), (spec.text_len,))
        self.content_dim = 1
        self.embed = nn.Embedding(spec.vocab_size, d_model)

    def forward(self, inputs: torch.Tensor, layout: Layout) -> torch.Tensor:
        return self.embed(words_of(inputs, self.spec))  # [B, L, D]

    def content(self, inputs: torch.Tensor, layout: Layout) -> torch.Tensor:
        return words_of(inputs, self.spec).float()[..., None]  # [B, L, 1]

    def init_embedding(self) -> None:
        nn.init.normal_(self.embed.weight, std=1.0)  # unit scale beside the unit-amplitude sin-cos positions


@TOKENIZERS.register("caption", CaptionConfig)
def build_caption(cfg: CaptionConfig, task: LabeledTask, d_model: int) -> Caption:
    return Caption(text_image_input(task, "tokenizer caption"), d_model)


class TowerConfig(EncoderConfig):
    name: Literal["token_encoder"] = "token_encoder"


def tower(cfg: TowerConfig, task: LabeledTask) -> TokenEncoder:
    return TokenEncoder(cfg.tokenizer, cfg.pos, task, cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.d_ff, cfg.dropout, cfg.n_reg)


class TwoTowerConfig(ComponentConfig):
    name: Literal["two_tower"] = "two_tower"
    image: TowerConfig = Field(default_factory=lambda: TowerConfig(tokenizer=ImagePartConfig()))
    text: TowerConfig = Field(default_factory=lambda: TowerConfig(tokenizer=CaptionConfig()))


@MODELS.register("two_tower", TwoTowerConfig)
def build_two_tower(cfg: TwoTowerConfig, task: Task) -> nn.ModuleDict:
    task = labeled_task(task, "model two_tower")
    return nn.ModuleDict({"image": tower(cfg.image, task), "text": tower(cfg.text, task)})


class FusionConfig(TwoTowerConfig):
    name: Literal["ti_fusion"] = "ti_fusion"  # type: ignore[assignment]  (narrows two_tower's name)
    fusion_layers: int = Field(default=1, ge=1)
    fusion_heads: int = Field(default=4, ge=1)
    use_text: bool = True  # False: the text-removed control (a learned "no text" token instead of the caption)


class FusedEncoder(nn.Module):
    def __init__(self, cfg: FusionConfig, task: LabeledTask) -> None:
        super().__init__()
        self.image, self.text = tower(cfg.image, task), tower(cfg.text, task)
        if cfg.image.d_model != cfg.text.d_model or cfg.image.d_model % cfg.fusion_heads:
            raise ValueError(f"ti_fusion needs towers of one width divisible by fusion_heads={cfg.fusion_heads}; "
                             f"got image {cfg.image.d_model}, text {cfg.text.d_model}")
        d = cfg.image.d_model
        self.tokenizer, self.layout, self.pos_cfg, self.d_model = self.image.tokenizer, self.image.layout, self.image.pos_cfg, d
        layer = nn.TransformerDecoderLayer(d, cfg.fusion_heads, dim_feedforward=4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.fusion = nn.TransformerDecoder(layer, cfg.fusion_layers)
        self.ln = nn.LayerNorm(d)
        self.use_text = cfg.use_text
        self.no_text = nn.Parameter(0.02 * torch.randn(1, 1, d))  # [1, 1, D]: the memory when the text is removed

    def forward(self, inputs: torch.Tensor, layout: Layout | None = None, keep: torch.Tensor | None = None) -> torch.Tensor:
        z = self.image(inputs, layout, keep)  # [B, N', D]
        memory = self.text(inputs) if self.use_text else self.no_text.expand(z.shape[0], -1, -1)  # [B, L, D] | [B, 1, D]
        return self.ln(self.fusion(z, memory))  # [B, N', D]: image tokens conditioned on the caption


@MODELS.register("ti_fusion", FusionConfig)
def build_ti_fusion(cfg: FusionConfig, task: Task) -> FusedEncoder:
    return FusedEncoder(cfg, labeled_task(task, "model ti_fusion"))
