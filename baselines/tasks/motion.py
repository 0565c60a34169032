"""Synthetic motion: pairs of frames of textured objects moving over a panning textured background (MC-JEPA's
CPU stand-in for flow data), with the ground-truth flow and per-pixel class masks the generator knows for free,
and still frames for the content branch.

A frame (3 x size x size, values about [-1, 1]) holds 1 to `max_objects` objects.  An object's class is
(shape, texture): 4 shapes (disk, square, triangle, ring) x 2 textures (stripes at a random angle, checker) =
8 classes; its two colours are random (a nuisance).  Object 0 is the largest and is drawn first (the others may
cover it); its class is the frame's label.  Everything is rendered analytically from continuous coordinates,
so sub-pixel motion is exact:

    frame 2 = the background shifted by the pan p ~ U[-max_pan, max_pan]^2, each object shifted by its own
              d_k ~ U[-max_shift, max_shift]^2 (its texture moves with it)
    flow [2, H, W] (x, y): where the content at each pixel of frame 1 is in frame 2: d_k on object k's pixels
              (the topmost), p on the background.  Occlusions are not marked.
    masks [H, W]: 0 background, 1 + class of the topmost object

`motion: false` (the mechanism-off knob) sets every pan and shift to zero.  Train batches are `MotionBatch`es
(a fresh pair + a fresh still frame per row, drawn from the run's generator).  Eval splits (fixed by
`data_seed`, the same for every seed): "train" / "test" are `SegmentedBatch`es of still frames (labels [S] and
masks [S, H, W]: the class and dense probes fit on "train", score on "test"); "flow" is a `FlowBatch` of pairs
with their flow (the end-point error).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from pydantic import Field

from baselines.tasks.labeled import GridInput, LabeledBatch
from harness.components import TASKS
from harness.registry import ComponentConfig

N_SHAPES, N_TEXTURES = 4, 2
N_CLASSES = N_SHAPES * N_TEXTURES  # object classes; dense classes = N_CLASSES + 1 (background 0)


@dataclass
class MotionBatch:
    """frames: [B, 2, 3, H, W] consecutive frames; stills: [B, 3, H, W] single frames for the content branch."""

    frames: torch.Tensor
    stills: torch.Tensor

    def __len__(self) -> int:
        return self.frames.shape[0]

    def to(self, device: torch.device) -> MotionBatch:
        return MotionBatch(self.frames.to(device), self.stills.to(device))

    def slice(self, start: int, stop: int) -> MotionBatch:
        return MotionBatch(self.frames[start:stop], self.stills[start:stop])


@dataclass
class SegmentedBatch(LabeledBatch):
    """A LabeledBatch (inputs [B, 3, H, W], labels [B]) with per-pixel classes masks [B, H, W] long."""

    masks: torch.Tensor = None  # type: ignore[assignment]

    def to(self, device: torch.device) -> SegmentedBatch:
        return SegmentedBatch(self.inputs.to(device), self.labels.to(device), self.masks.to(device))

    def slice(self, start: int, stop: int) -> SegmentedBatch:
        return SegmentedBatch(self.inputs[start:stop], self.labels[start:stop], self.masks[start:stop])

    def subset(self, index: torch.Tensor) -> SegmentedBatch:
        return SegmentedBatch(self.inputs[index], self.labels[index], self.masks[index])


@dataclass
class FlowBatch:
    """frames: [B, 2, 3, H, W]; flow: [B, 2, H, W] (x, y) from frame 1 to frame 2, in pixels."""

    frames: torch.Tensor
    flow: torch.Tensor

    def __len__(self) -> int:
        return self.frames.shape[0]

    def to(self, device: torch.device) -> FlowBatch:
        return FlowBatch(self.frames.to(device), self.flow.to(device))

    def slice(self, start: int, stop: int) -> FlowBatch:
        return FlowBatch(self.frames[start:stop], self.flow[start:stop])


class MovingShapesConfig(ComponentConfig):
    name: str = "moving_shapes"
    size: int = Field(default=32, ge=16)  # frames are size x size
    max_objects: int = Field(default=3, ge=1, le=6)
    max_shift: float = Field(default=3.0, ge=0.0)  # per-object translation, pixels per frame
    max_pan: float = Field(default=2.0, ge=0.0)  # background (camera pan) translation
    motion: bool = True  # false: nothing moves (the mechanism-off control)
    probe_train_size: int = Field(default=1000, ge=16)
    probe_test_size: int = Field(default=500, ge=16)
    flow_test_size: int = Field(default=256, ge=8)
    data_seed: int = 1234  # the eval splits' generator (the same for every training seed)

    def held_bytes(self) -> dict[str, int]:
        per = 3 * self.size * self.size * 4
        return {"probe_train_size": self.probe_train_size * per, "probe_test_size": self.probe_test_size * per,
                "flow_test_size": self.flow_test_size * 2 * per}

    def dry_config(self, batch_size: int = 16) -> MovingShapesConfig:
        return self.model_copy(update={"probe_train_size": 16, "probe_test_size": 16, "flow_test_size": 8})


def _u(g: torch.Generator, *shape: int, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(*shape, generator=g)


def _shape_mask(shape: torch.Tensor, u: torch.Tensor, v: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Inside-masks [B, H, W] bool of shapes [B] at object coordinates u, v [B, H, W] (pixels from the
    centre), radius r [B, 1, 1]."""
    a, b = u / r, v / r  # [B, H, W] in units of the radius
    disk = a * a + b * b <= 1.0
    square = (a.abs() <= 0.8) & (b.abs() <= 0.8)
    triangle = (b <= 0.7) & (b >= 2.0 * a.abs() - 1.0)
    ring = (a * a + b * b <= 1.0) & (a * a + b * b >= 0.3)
    s = shape.view(-1, 1, 1)
    return torch.where(s == 0, disk, torch.where(s == 1, square, torch.where(s == 2, triangle, ring)))


def _texture(kind: torch.Tensor, angle: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Mixing weights [B, H, W] in [0, 1]: stripes (kind 0) at `angle` [B], or a checker (kind 1), period 4 px."""
    k = 2 * math.pi / 4.0
    c, s = angle.cos().view(-1, 1, 1), angle.sin().view(-1, 1, 1)
    stripes = 0.5 + 0.5 * torch.sin(k * (c * u + s * v))
    checker = 0.5 + 0.5 * torch.sign(torch.sin(k * (c * u + s * v)) * torch.sin(k * (c * v - s * u)))
    return torch.where(kind.view(-1, 1, 1) == 0, stripes, checker)


def generate(cfg: MovingShapesConfig, n: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """n pairs: frames [n, 2, 3, H, W], flow [n, 2, H, W], masks [n, H, W] (of frame 1), labels [n]."""
    size, k_max = cfg.size, cfg.max_objects
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
    scale = 1.0 if cfg.motion else 0.0
    pan = _u(g, n, 2, lo=-cfg.max_pan, hi=cfg.max_pan) * scale  # [n, 2] (x, y)
    # background: 4 random colour gratings (low contrast), a function of the panned coordinates
    freq = _u(g, n, 4, 2, lo=-0.5, hi=0.5)  # [n, 4, 2] radians per pixel (x, y)
    phase, tint = _u(g, n, 4, hi=2 * math.pi), _u(g, n, 4, 3, lo=-0.25, hi=0.25)  # [n, 4], [n, 4, 3]
    base = _u(g, n, 3, lo=-0.3, hi=0.3)  # [n, 3]
    n_obj = torch.randint(1, k_max + 1, (n,), generator=g)  # [n]
    shape, texture = torch.randint(0, N_SHAPES, (n, k_max), generator=g), torch.randint(0, N_TEXTURES, (n, k_max), generator=g)
    radius = torch.cat([_u(g, n, 1, lo=7.0, hi=9.0), _u(g, n, k_max - 1, lo=4.0, hi=6.0)], dim=1) * size / 32  # [n, K]
    centre = _u(g, n, k_max, 2, lo=0.25 * size, hi=0.75 * size)  # [n, K, 2]
    shift = _u(g, n, k_max, 2, lo=-cfg.max_shift, hi=cfg.max_shift) * scale  # [n, K, 2]
    angle = _u(g, n, k_max, hi=math.pi)  # [n, K]
    colours = _u(g, n, k_max, 2, 3, lo=-1.0, hi=1.0)  # [n, K, 2, 3]

    frames = torch.empty(n, 2, 3, size, size)
    flow = pan.view(n, 2, 1, 1).expand(n, 2, size, size).clone()  # [n, 2, H, W] background motion
    masks = torch.zeros(n, size, size, dtype=torch.long)
    for t in range(2):
        bx, by = xs - t * pan[:, 0].view(-1, 1, 1), ys - t * pan[:, 1].view(-1, 1, 1)  # [n, H, W]: content moves by +pan
        arg = freq[..., 0, None, None] * bx[:, None] + freq[..., 1, None, None] * by[:, None] + phase[..., None, None]  # [n, 4, H, W]
        img = base.view(n, 3, 1, 1) + torch.einsum("nghw,ngc->nchw", torch.sin(arg), tint)  # [n, 3, H, W]
        for k in range(k_max):
            cx = centre[:, k, 0] + t * shift[:, k, 0]  # [n]
            cy = centre[:, k, 1] + t * shift[:, k, 1]
            u, v = xs - cx.view(-1, 1, 1), ys - cy.view(-1, 1, 1)  # [n, H, W]
            inside = _shape_mask(shape[:, k], u, v, radius[:, k].view(-1, 1, 1)) & (k < n_obj).view(-1, 1, 1)  # [n, H, W]
            w = _texture(texture[:, k], angle[:, k], u, v)[:, None]  # [n, 1, H, W]
            paint = w * colours[:, k, 0, :, None, None] + (1 - w) * colours[:, k, 1, :, None, None]  # [n, 3, H, W]
            img = torch.where(inside[:, None], paint, img)
            if t == 0:
                flow = torch.where(inside[:, None], shift[:, k].view(n, 2, 1, 1), flow)
                masks = torch.where(inside, (1 + shape[:, k] * N_TEXTURES + texture[:, k]).view(-1, 1, 1), masks)
        frames[:, t] = img
    labels = shape[:, 0] * N_TEXTURES + texture[:, 0]  # [n] object 0's class
    return {"frames": frames, "flow": flow, "masks": masks, "labels": labels}


class MotionTask:
    """The task of the module docstring (a LabeledTask: its "train" / "test" splits are labelled still frames)."""

    n_classes = N_CLASSES

    def __init__(self, cfg: MovingShapesConfig) -> None:
        self.cfg = cfg
        self.input_spec = GridInput(3, (cfg.size, cfg.size))
        g = torch.Generator().manual_seed(cfg.data_seed)
        self.splits: dict[str, SegmentedBatch | FlowBatch] = {}
        for split, n in (("train", cfg.probe_train_size), ("test", cfg.probe_test_size)):
            d = generate(cfg, n, g)
            self.splits[split] = SegmentedBatch(d["frames"][:, 0], d["labels"], d["masks"])
        d = generate(cfg, cfg.flow_test_size, g)
        self.splits["flow"] = FlowBatch(d["frames"], d["flow"])

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[MotionBatch]:
        while True:
            pairs = generate(self.cfg, batch_size, generator)["frames"]  # [B, 2, 3, H, W]
            stills = generate(self.cfg, batch_size, generator)["frames"][:, 0]  # [B, 3, H, W]
            yield MotionBatch(pairs, stills)

    def eval_splits(self) -> dict[str, SegmentedBatch | FlowBatch]:
        return self.splits


@TASKS.register("moving_shapes", MovingShapesConfig)
def build(cfg: MovingShapesConfig, seed: int) -> MotionTask:
    return MotionTask(cfg)
