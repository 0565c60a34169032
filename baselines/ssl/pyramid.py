"""A small convolutional feature pyramid (MC-JEPA's shared encoder, a ConvNeXt-T in the paper), registered as
the model `conv_pyramid`.

    images [B, C, H, W] -> levels, finest first: level l = two 3x3 convs (the first with stride 2) + GELU,
    [B, channels[l], H / 2^(l+1), W / 2^(l+1)]

32 x 32 frames with channels [16, 32, 48] give 16 x 16, 8 x 8 and 4 x 4 maps (~50k parameters).  The flow head
reads every level, the content branch (VICReg) and the class probe the coarsest (mean-pooled), the dense probe
every level upsampled to the frame.  Convolutions start from He-normal weights and zero biases (with torch's
default init the coarsest features start at std ~0.01 and every objective's gradient is tiny).
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from baselines.tasks.labeled import GridInput, labeled_task
from harness.components import MODELS, Task
from harness.registry import ComponentConfig


class PyramidConfig(ComponentConfig):
    name: str = "conv_pyramid"
    channels: list[int] = Field(default_factory=lambda: [16, 32, 48], min_length=1)


class ConvPyramid(nn.Module):
    def __init__(self, in_channels: int, channels: list[int]) -> None:
        super().__init__()
        self.channels = list(channels)
        ins = [in_channels, *channels[:-1]]
        self.levels = nn.ModuleList(
            nn.Sequential(nn.Conv2d(i, c, 3, stride=2, padding=1), nn.GELU(), nn.Conv2d(c, c, 3, padding=1), nn.GELU())
            for i, c in zip(ins, channels))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # He init: torch's default shrinks the features ~3x a layer (measured:
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")  # std 0.01 after 6 layers)
                nn.init.zeros_(m.bias)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """images [B, C, H, W] -> [B, channels[l], h_l, w_l] per level, finest first."""
        out, x = [], images
        for level in self.levels:
            x = level(x)
            out.append(x)
        return out

    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """The coarsest level as tokens [B, h * w, C] (what the class probe pools)."""
        return self(images)[-1].flatten(2).transpose(1, 2)


@MODELS.register("conv_pyramid", PyramidConfig)
def build(cfg: PyramidConfig, task: Task) -> ConvPyramid:
    spec = labeled_task(task, "model conv_pyramid").input_spec
    if not isinstance(spec, GridInput):
        raise TypeError(f"model conv_pyramid needs image inputs (GridInput), got {type(spec).__name__}")
    if min(spec.size) % 2 ** len(cfg.channels):
        raise ValueError(f"{len(cfg.channels)} levels halve the frame {len(cfg.channels)} times: "
                         f"size {spec.size} must be divisible by {2 ** len(cfg.channels)}")
    return ConvPyramid(spec.channels, cfg.channels)
