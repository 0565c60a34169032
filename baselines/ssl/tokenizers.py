"""Tokenizers: a modality's inputs -> N token embeddings plus the layout that says where each token sits.

    layout_of(inputs)          -> Layout            parameter-free, runs in the data stream (mask samplers
                                                    read it); the tokenizer's `layout` when it is static
    forward(inputs, layout)    -> [B, N, D]         content embeddings (positions are added by the encoder)
    content(inputs, layout)    -> [B, N, P]         each token's raw content: what MAE reconstructs
    init_embedding()                                re-initializes the embedding after the encoder's
                                                    GPT-2 init of every linear layer

Registered in TOKENIZERS; a builder gets (cfg, task, d_model) and checks the task's `input_spec`.

    patch2d   non-overlapping (ph x pw) patches of inputs [B, C, H, W] on a (H/ph) x (W/pw) grid, row-major,
              a linear patch embedding with a Xavier init (MAE / I-JEPA); the layout's axes are the task's
              (("row", "col") for images, ("freq", "time") for spectrograms)
    features  one token per column of a table [B, F] (T-JEPA): numeric j -> weight_j * x_j + bias_j,
              categorical j -> an embedding of its code; layout ("feature",) of length F
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeVar

import torch
from pydantic import Field
from torch import nn

from baselines.ssl.layout import Layout
from baselines.tasks.labeled import GridInput, LabeledTask, TableInput, labeled_task
from harness.components import Task
from harness.registry import ComponentConfig, Registry
from harness.train.optim import no_weight_decay


class Tokenizer(nn.Module):
    """Base class (module docstring).  `layout` is the layout of every batch for a static tokenizer."""

    layout: Layout
    content_dim: int  # P

    def layout_of(self, inputs: torch.Tensor) -> Layout:
        return self.layout

    def content(self, inputs: torch.Tensor, layout: Layout) -> torch.Tensor:
        raise NotImplementedError

    def init_embedding(self) -> None:
        pass


Spec = TypeVar("Spec")
TokenizerBuilder = Callable[[ComponentConfig, LabeledTask, int], Tokenizer]
TOKENIZERS: Registry[TokenizerBuilder] = Registry("tokenizer")


def build_tokenizer(cfg: ComponentConfig, task: LabeledTask, d_model: int) -> Tokenizer:
    return TOKENIZERS.get(cfg.name).build(cfg, task, d_model)


# ----------------------------------------------------------------------------------------------
# patches of a 2-D grid


def patchify(images: torch.Tensor, patch: int | tuple[int, int]) -> torch.Tensor:
    """images [B, C, H, W] -> patches [B, N, ph*pw*C], N = (H/ph)*(W/pw), patches row-major."""
    ph, pw = (patch, patch) if isinstance(patch, int) else patch
    B, C, H, W = images.shape
    gh, gw = H // ph, W // pw
    x = images.reshape(B, C, gh, ph, gw, pw)  # [B, C, gh, ph, gw, pw]
    x = x.permute(0, 2, 4, 3, 5, 1)  # [B, gh, gw, ph, pw, C]
    return x.reshape(B, gh * gw, ph * pw * C)  # [B, N, ph*pw*C]


class Patch2dConfig(ComponentConfig):
    name: Literal["patch2d"] = "patch2d"
    patch: tuple[int, int] = (2, 2)  # patch extent along the grid's first and second axis


class Patch2d(Tokenizer):
    def __init__(self, patch: tuple[int, int], spec: GridInput, d_model: int) -> None:
        super().__init__()
        (H, W), (ph, pw) = spec.size, patch
        if ph < 1 or pw < 1 or H % ph or W % pw:
            raise ValueError(f"patch {patch} must divide the {H} x {W} inputs")
        self.patch = patch
        self.layout = Layout.grid(spec.axes, (H // ph, W // pw))
        self.content_dim = ph * pw * spec.channels  # pixels per patch
        self.embed = nn.Linear(self.content_dim, d_model)

    def forward(self, inputs: torch.Tensor, layout: Layout) -> torch.Tensor:
        return self.embed(patchify(inputs, self.patch))  # [B, N, D]

    def content(self, inputs: torch.Tensor, layout: Layout) -> torch.Tensor:
        return patchify(inputs, self.patch)  # [B, N, P]

    def init_embedding(self) -> None:
        # MAE / I-JEPA: a Xavier init, so that at init the patch content is not drowned by the unit-amplitude
        # sin-cos positions (N(0, 0.02) over a few pixels would be)
        nn.init.xavier_uniform_(self.embed.weight)


def grid_input(task: LabeledTask, user: str) -> GridInput:
    if not isinstance(task.input_spec, GridInput):
        raise TypeError(f"{user} needs inputs on a 2-D grid (images, spectrograms); {type(task).__name__} has "
                        f"{type(task.input_spec).__name__}")
    return task.input_spec


@TOKENIZERS.register("patch2d", Patch2dConfig)
def build_patch2d(cfg: Patch2dConfig, task: LabeledTask, d_model: int) -> Patch2d:
    return Patch2d(cfg.patch, grid_input(labeled_task(task, "tokenizer patch2d"), "tokenizer patch2d"), d_model)


# ----------------------------------------------------------------------------------------------
# one token per table column


class FeaturesConfig(ComponentConfig):
    name: Literal["features"] = "features"
    init_std: float = Field(default=1.0, gt=0.0)  # N(0, init_std) weights, biases and category embeddings


class FeatureTokens(Tokenizer):
    def __init__(self, cfg: FeaturesConfig, spec: TableInput, d_model: int) -> None:
        super().__init__()
        cards = torch.tensor(spec.cardinalities)  # [F]
        self.init_std = cfg.init_std
        self.layout = Layout.grid(("feature",), (spec.n_features,))
        self.content_dim = 1  # the column's value (a categorical code as a number)
        self.register_buffer("categorical", cards > 0, persistent=False)  # [F]
        offsets = torch.cumsum(cards, 0) - cards  # [F]: first row of feature j's codes in the table
        self.register_buffer("offsets", offsets, persistent=False)
        self.weight = nn.Parameter(torch.zeros(spec.n_features, d_model))  # [F, D]
        self.bias = nn.Parameter(torch.zeros(spec.n_features, d_model))  # [F, D]
        self.codes = nn.Embedding(max(sum(spec.cardinalities), 1), d_model)  # every categorical code of every feature
        no_weight_decay(self.weight, self.bias, self.codes.weight)  # embeddings of one scalar each, not weights

    def forward(self, inputs: torch.Tensor, layout: Layout) -> torch.Tensor:
        cat = self.categorical  # [F]
        numeric = torch.where(cat, torch.zeros_like(inputs), inputs)  # [B, F]
        tokens = numeric[..., None] * self.weight + self.bias  # [B, F, D]
        codes = torch.where(cat, inputs.long() + self.offsets, torch.zeros_like(self.offsets))  # [B, F]
        return tokens + self.codes(codes) * cat[:, None]  # [B, F, D]: the code embedding on categorical columns

    def content(self, inputs: torch.Tensor, layout: Layout) -> torch.Tensor:
        return inputs[..., None]  # [B, F, 1]

    def init_embedding(self) -> None:
        for p in (self.weight, self.bias, self.codes.weight):
            nn.init.normal_(p, std=self.init_std)


def task_input(task: Task, spec: type[Spec], user: str, what: str) -> Spec:
    """The labelled task's input_spec when it is a `spec`, else a clear error: `user` needs `what`."""
    task = labeled_task(task, user)
    if not isinstance(task.input_spec, spec):
        raise TypeError(f"{user} needs {what}; {type(task).__name__} has {type(task.input_spec).__name__}")
    return task.input_spec


@TOKENIZERS.register("features", FeaturesConfig)
def build_features(cfg: FeaturesConfig, task: LabeledTask, d_model: int) -> FeatureTokens:
    return FeatureTokens(cfg, task_input(task, TableInput, "tokenizer features", "a table"), d_model)
