"""Tokens and positions of multichannel signals (EEG channels, fMRI regions): S-JEPA's and Brain-JEPA's.

Tokenizer `channel_conv` (TOKENIZERS): inputs [B, C, T] (`SignalInput`) -> C x t tokens, channel-major
(token n = c * t + j), layout axes ("channel", "time") on the full C x t grid, with the input spec's per-channel
attributes repeated over each channel's tokens (layout.attrs "positions", "gradient": [N, k]).  The local
encoder is shared by every channel (S-JEPA's per-channel CNN): Conv1d layers (out, kernel, stride), each
padded by (kernel - stride) / 2 and followed by GELU, then a linear map to d_model; the strides' product is
the samples per token (T / t).  Brain-JEPA's patch embedding (Conv2d(1, D, (1, 16))) is one layer with
kernel = stride.  `content` is each token's own samples [B, N, T/t] (what MAE reconstructs); `local(x)` runs
the local encoder alone on any number of (virtual) channels (the post- and pre-local heads).

Positional encoding `channel_time` (POS_ENCODINGS): the first `spatial_share` of the width from a channel's
attribute `attr` (positions: electrode / anatomical coordinates; gradient: the connectivity gradient), the
rest a fixed sin-cos of the time index:
    encode sincos_init   S-JEPA: a trainable per-channel table initialized with sin-cos codes of the
                         coordinates (scaled by `scale`; the spatial width split over the attribute's axes)
    encode linear        Brain-JEPA: a linear map (k -> spatial width, N(0, 1/k) init) of the attribute min-max
                         scaled to [-1, 1]
The "sin-cos of the region index" arm is the core `sincos` encoding over ("channel", "time").
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, field_validator
from torch import nn

from baselines.ssl.layout import Layout
from baselines.ssl.positions import POS_ENCODINGS, PositionalEncoding, sincos, sincos_1d
from baselines.ssl.tokenizers import TOKENIZERS, Tokenizer
from baselines.tasks.labeled import LabeledTask, labeled_task
from baselines.tasks.signals import SignalInput
from harness.registry import ComponentConfig
from harness.train.optim import no_weight_decay


def signal_input(task: LabeledTask, user: str) -> SignalInput:
    spec = labeled_task(task, user).input_spec
    if not isinstance(spec, SignalInput):
        raise TypeError(f"{user} needs multichannel signals [B, C, T]; {type(task).__name__} has {type(spec).__name__}")
    return spec


class ChannelConvConfig(ComponentConfig):
    name: Literal["channel_conv"] = "channel_conv"
    layers: list[tuple[int, int, int]] = Field(default_factory=lambda: [(16, 16, 8), (32, 4, 4)])  # (out, kernel, stride)

    @field_validator("layers")
    @classmethod
    def _valid(cls, layers: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
        if not layers or any(o < 1 or k < s or s < 1 or (k - s) % 2 for o, k, s in layers):
            raise ValueError(f"layers {layers}: need >= 1 (out, kernel, stride) with kernel >= stride >= 1 and kernel - stride even")
        return layers


class ChannelConv(Tokenizer):
    def __init__(self, cfg: ChannelConvConfig, spec: SignalInput, d_model: int) -> None:
        super().__init__()
        self.window = 1
        for _, _, s in cfg.layers:
            self.window *= s
        if spec.length % self.window:
            raise ValueError(f"the strides of tokenizer channel_conv ({self.window} samples per token) must divide the {spec.length} samples")
        C, t = spec.channels, spec.length // self.window
        self.layout = Layout.grid(("channel", "time"), (C, t), **{k: v.repeat_interleave(t, dim=0) for k, v in spec.attrs.items()})
        self.content_dim = self.window
        convs, width = [], 1
        for out, k, s in cfg.layers:
            convs += [nn.Conv1d(width, out, k, stride=s, padding=(k - s) // 2), nn.GELU()]
            width = out
        self.convs = nn.Sequential(*convs)
        self.embed = nn.Linear(width, d_model)

    def local(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C', T] (any number of channels) -> per-channel local features [B, C', t, D]."""
        B, C, T = x.shape
        h = self.convs(x.reshape(B * C, 1, T))  # [B*C', width, t]
        return self.embed(h.transpose(1, 2)).view(B, C, T // self.window, -1)  # [B, C', t, D]

    def forward(self, inputs: torch.Tensor, layout: Layout) -> torch.Tensor:
        return self.local(inputs).flatten(1, 2)  # [B, C*t, D], channel-major

    def content(self, inputs: torch.Tensor, layout: Layout) -> torch.Tensor:
        B, C, T = inputs.shape
        return inputs.reshape(B, C * (T // self.window), self.window)  # [B, N, T/t]

    def init_embedding(self) -> None:
        for m in self.convs:
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.xavier_uniform_(self.embed.weight)


@TOKENIZERS.register("channel_conv", ChannelConvConfig)
def build_channel_conv(cfg: ChannelConvConfig, task: LabeledTask, d_model: int) -> ChannelConv:
    return ChannelConv(cfg, signal_input(task, "tokenizer channel_conv"), d_model)


class ChannelTimeConfig(ComponentConfig):
    name: Literal["channel_time"] = "channel_time"
    attr: Literal["positions", "gradient"] = "positions"
    encode: Literal["sincos_init", "linear"] = "sincos_init"
    spatial_share: float = Field(default=30 / 64, gt=0.0, lt=1.0)  # S-JEPA 30 of 64 (12 of 32); Brain-JEPA one half
    scale: float = Field(default=10.0, gt=0.0)  # sincos_init: coordinates x scale before the sin-cos code


class ChannelTime(PositionalEncoding):
    def __init__(self, cfg: ChannelTimeConfig, width: int, layout: Layout) -> None:
        super().__init__()
        if layout.shape is None or layout.axes != ("channel", "time") or cfg.attr not in layout.attrs:
            raise ValueError(f"positions channel_time need a (channel, time) grid with attribute '{cfg.attr}'; the layout has "
                             f"axes {layout.axes}, attributes {sorted(layout.attrs)}")
        C, t = layout.shape
        # [C, k]: one row per channel, on the default device (the task's attributes are CPU tensors; harness.estimate
        # builds the model under torch.device("meta"))
        attr = layout.attrs[cfg.attr][::t].float().to(torch.empty(0).device)
        k = attr.shape[1]
        unit = 2 * k if cfg.encode == "sincos_init" else 2
        self.spatial = max(unit, round(width * cfg.spatial_share / unit) * unit)
        if (width - self.spatial) < 2 or (width - self.spatial) % 2:
            raise ValueError(f"positions channel_time: width {width} leaves {width - self.spatial} time features (need an even number >= 2)")
        self.encode, self.t = cfg.encode, t
        self.register_buffer("time", sincos_1d(torch.arange(t, dtype=torch.float32), width - self.spatial), persistent=False)  # [t, wt]
        if cfg.encode == "sincos_init":
            self.table = nn.Parameter(sincos(attr * cfg.scale, self.spatial, base=100.0))  # [C, ws] trainable
            no_weight_decay(self.table)
        else:
            lo, hi = attr.amin(dim=0), attr.amax(dim=0)
            self.register_buffer("attr", 2 * (attr - lo) / (hi - lo).clamp_min(1e-8) - 1, persistent=False)  # [C, k] in [-1, 1]
            # raw parameters, not an nn.Linear: the encoder's GPT-2 init (N(0, 0.02)) would shrink the code to
            # nothing beside the unit-amplitude time code; this keeps it at unit scale like the sin-cos arms
            self.weight = nn.Parameter(torch.randn(k, self.spatial) / k**0.5)  # [k, ws]
            self.bias = nn.Parameter(torch.zeros(self.spatial))

    def forward(self, layout: Layout) -> torch.Tensor:
        spatial = self.table if self.encode == "sincos_init" else self.attr @ self.weight + self.bias  # [C, ws]
        C = spatial.shape[0]
        return torch.cat([spatial.repeat_interleave(self.t, dim=0), self.time.repeat(C, 1)], dim=1)  # [C*t, width]


POS_ENCODINGS.register("channel_time", ChannelTimeConfig)(ChannelTime)

