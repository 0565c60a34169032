"""Optical flow on a feature pyramid (MC-JEPA's motion branch, PWC-Net style): backward warping with
torch's grid_sample, a local cost volume, and a coarse-to-fine residual flow head.

    warp(x, flow)             x [B, C, H, W] sampled at p + flow(p) (bilinear, zeros outside): if frame 2 is
                              frame 1 moved by flow, warp(frame2, flow) is frame 1 again
    cost_volume(f1, f2, r)    [B, (2r+1)^2, H, W]: channel-mean of f1(p) * f2(p + d) over the integer
                              offsets |d_x|, |d_y| <= r
    upsample_flow(flow, hw)   a flow field resized to hw, its vectors scaled with it
    FlowHead(channels)        pyramid levels of both frames (finest first) -> one flow per level, coarsest
                              first, in pixels of its level: flow_l = up(flow_{l+1}) + estimator_l([f1_l,
                              warp(f2_l, up), cost volume, up]); the coarsest starts from zero
    end_point_error(pred, gt) mean over pixels of |pred - gt| (Euclidean), pred resized to gt's grid first
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pixel_grid(h: int, w: int, device: torch.device) -> torch.Tensor:
    """[2, h, w]: the (x, y) pixel coordinates of every position."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32),
                            torch.arange(w, device=device, dtype=torch.float32), indexing="ij")
    return torch.stack([xs, ys])


def warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """x [B, C, H, W] sampled at p + flow(p), flow [B, 2, H, W] (x, y) in pixels -> [B, C, H, W]."""
    _, _, h, w = x.shape
    pos = pixel_grid(h, w, x.device) + flow  # [B, 2, H, W] where to read
    gx = 2.0 * pos[:, 0] / max(w - 1, 1) - 1.0  # [B, H, W] in [-1, 1] (align_corners=True: -1, 1 = pixel centres 0, W-1)
    gy = 2.0 * pos[:, 1] / max(h - 1, 1) - 1.0
    grid = torch.stack([gx, gy], dim=-1)  # [B, H, W, 2]
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def cost_volume(f1: torch.Tensor, f2: torch.Tensor, radius: int) -> torch.Tensor:
    """f1, f2 [B, C, H, W] -> [B, (2r+1)^2, H, W] (module docstring); f2 is zero outside the frame."""
    _, _, h, w = f1.shape
    padded = F.pad(f2, (radius, radius, radius, radius))  # [B, C, H + 2r, W + 2r]
    costs = [(f1 * padded[:, :, dy:dy + h, dx:dx + w]).mean(dim=1)  # [B, H, W]
             for dy in range(2 * radius + 1) for dx in range(2 * radius + 1)]
    return torch.stack(costs, dim=1)  # [B, (2r+1)^2, H, W]


def upsample_flow(flow: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """flow [B, 2, h, w] -> [B, 2, H, W], bilinear, the x (y) components scaled by W / w (H / h)."""
    h, w = flow.shape[-2:]
    up = F.interpolate(flow, size=hw, mode="bilinear", align_corners=False)  # [B, 2, H, W]
    scale = torch.tensor([hw[1] / w, hw[0] / h], device=flow.device, dtype=flow.dtype).view(1, 2, 1, 1)
    return up * scale


class FlowEstimator(nn.Sequential):
    """[B, in, h, w] -> residual flow [B, 2, h, w]: two 3x3 conv + GELU layers and a 3x3 conv to 2 channels."""

    def __init__(self, in_channels: int, hidden: int) -> None:
        super().__init__(nn.Conv2d(in_channels, hidden, 3, padding=1), nn.GELU(),
                         nn.Conv2d(hidden, hidden, 3, padding=1), nn.GELU(),
                         nn.Conv2d(hidden, 2, 3, padding=1))
        nn.init.zeros_(self[-1].weight)  # starts at zero flow
        nn.init.zeros_(self[-1].bias)


class FlowHead(nn.Module):
    """Coarse-to-fine flow from the pyramids of two frames (module docstring); `channels` finest first."""

    def __init__(self, channels: list[int], hidden: int, radius: int) -> None:
        super().__init__()
        self.radius = radius
        cv = (2 * radius + 1) ** 2
        self.estimators = nn.ModuleList(FlowEstimator(2 * c + cv + 2, hidden) for c in channels)  # finest first

    def forward(self, levels1: list[torch.Tensor], levels2: list[torch.Tensor]) -> list[torch.Tensor]:
        """levels [B, C_l, h_l, w_l] finest first -> flows [B, 2, h_l, w_l], coarsest first."""
        flows: list[torch.Tensor] = []
        for level in reversed(range(len(levels1))):
            f1, f2 = levels1[level], levels2[level]  # [B, C, h, w]
            hw = tuple(f1.shape[-2:])
            up = upsample_flow(flows[-1], hw) if flows else f1.new_zeros(f1.shape[0], 2, *hw)  # [B, 2, h, w]
            f2w = warp(f2, up)  # [B, C, h, w]
            x = torch.cat([f1, f2w, cost_volume(f1, f2w, self.radius), up], dim=1)  # [B, 2C + cv + 2, h, w]
            flows.append(up + self.estimators[level](x))  # [B, 2, h, w]
        return flows


def end_point_error(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """pred [B, 2, h, w] (resized to gt's grid), gt [B, 2, H, W] -> [B] mean end-point error per pair."""
    if pred.shape[-2:] != gt.shape[-2:]:
        pred = upsample_flow(pred, tuple(gt.shape[-2:]))
    return (pred - gt).norm(dim=1).flatten(1).mean(dim=1)  # [B]
