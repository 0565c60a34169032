"""Synthetic part-based point clouds (`synth_shapes3d`), the test bed of the point_jepa suite.

Ten classes, each a union of surface primitives (z is up):

    sphere    one sphere                      table   a thin top box on four box legs
    cube      a box shell                     chair   a seat box, four legs and a back box
    cylinder  a side wall and two end disks   lamp    a base disk, a thin pole, a cone shade
    cone      a lateral surface and a base    mug     an open wall, a bottom disk, a torus handle
    torus     one torus                       plane   a fuselage (wall + end disks), wings, fin, tailplane

Per cloud: every part's dimensions are jittered by a factor uniform in [1 - jitter, 1 + jitter] (part
proportions change, e.g. longer legs or a thicker top); `n_points` points are drawn by area over the union
of the parts (each point picks a part with probability proportional to its area, then a uniform point on
it); the cloud is scaled per axis by a factor uniform in `scale`, centered on its mean, divided by its largest
norm (the unit ball, Point-MAE's normalization), rotated about z by a uniform angle, and gets N(0, noise^2)
per coordinate.  The points are in random order.

Splits, all drawn once from `data_seed` (the same for every run seed): "pretrain" (`n_pretrain` clouds,
streamed in epochs of fresh permutations for pre-training; their labels ride along unused), and the eval
splits "train" (`n_probe_train`, what the probes are fit on) and "test" (`n_probe_test`, what they score).
The classes are balanced in each split (round-robin over the classes, then shuffled).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from baselines.tasks.labeled import LabeledBatch, PointCloudInput, epoch_batches
from baselines.tasks.ranges import check_interval
from harness.components import TASKS
from harness.registry import ComponentConfig

CLASSES = ("sphere", "cube", "cylinder", "cone", "torus", "table", "chair", "lamp", "mug", "plane")

# ----------------------------------------------------------------------------------------------
# surface primitives: n clouds x P candidate points each; every parameter is an array [n] (or [n, 3])
# A part is (area [n], sampler(rng) -> points [n, P, 3]).

Part = tuple[np.ndarray, Callable[[np.random.Generator], np.ndarray]]


def _frame(local: np.ndarray, axis: int) -> np.ndarray:
    """local [n, P, 3] built along z -> the same along `axis` (0: x, 1: y, 2: z), by a cyclic permutation."""
    return local if axis == 2 else np.roll(local, shift=axis + 1, axis=-1)


def box(n: int, P: int, size: np.ndarray, center: np.ndarray) -> Part:
    """Surface of an axis-aligned box, size [n, 3], center [n, 3]."""
    sx, sy, sz = size[:, 0], size[:, 1], size[:, 2]
    face = np.stack([sy * sz, sx * sz, sx * sy], axis=1)  # [n, 3]: area of the faces normal to x, y, z

    def sample(rng: np.random.Generator) -> np.ndarray:
        u = rng.random((n, P, 3)) - 0.5  # [n, P, 3]
        p = face / face.sum(axis=1, keepdims=True)  # [n, 3]
        axis = (rng.random((n, P, 1)) > np.cumsum(p, axis=1)[:, None, :]).sum(axis=-1)  # [n, P] in {0, 1, 2}
        axis = np.minimum(axis, 2)
        side = np.where(rng.random((n, P)) < 0.5, -0.5, 0.5)  # [n, P]
        np.put_along_axis(u, axis[..., None], side[..., None], axis=-1)  # on a face normal to `axis`
        return center[:, None, :] + u * size[:, None, :]  # [n, P, 3]

    return 2 * face.sum(axis=1), sample


def wall(n: int, P: int, radius: np.ndarray, height: np.ndarray, center: np.ndarray, axis: int = 2) -> Part:
    """Side wall of a cylinder along `axis`."""

    def sample(rng: np.random.Generator) -> np.ndarray:
        theta = rng.uniform(0, 2 * np.pi, (n, P))
        t = (rng.random((n, P)) - 0.5) * height[:, None]
        local = np.stack([radius[:, None] * np.cos(theta), radius[:, None] * np.sin(theta), t], axis=-1)  # [n, P, 3]
        return center[:, None, :] + _frame(local, axis)

    return 2 * np.pi * radius * height, sample


def disk(n: int, P: int, radius: np.ndarray, center: np.ndarray, axis: int = 2) -> Part:
    """A flat disk normal to `axis`."""

    def sample(rng: np.random.Generator) -> np.ndarray:
        theta = rng.uniform(0, 2 * np.pi, (n, P))
        r = radius[:, None] * np.sqrt(rng.random((n, P)))  # uniform by area
        local = np.stack([r * np.cos(theta), r * np.sin(theta), np.zeros((n, P))], axis=-1)  # [n, P, 3]
        return center[:, None, :] + _frame(local, axis)

    return np.pi * radius**2, sample


def sphere(n: int, P: int, radius: np.ndarray, center: np.ndarray) -> Part:
    def sample(rng: np.random.Generator) -> np.ndarray:
        v = rng.normal(size=(n, P, 3))
        v /= np.linalg.norm(v, axis=-1, keepdims=True)  # uniform on the unit sphere
        return center[:, None, :] + radius[:, None, None] * v

    return 4 * np.pi * radius**2, sample


def cone(n: int, P: int, radius: np.ndarray, height: np.ndarray, base: np.ndarray) -> Part:
    """Lateral surface of a cone with its base disk at `base`, apex `height` above it (height < 0: below)."""

    def sample(rng: np.random.Generator) -> np.ndarray:
        s = np.sqrt(rng.random((n, P)))  # distance from the apex as a fraction: uniform by area
        theta = rng.uniform(0, 2 * np.pi, (n, P))
        r = s * radius[:, None]
        z = (1 - s) * height[:, None]
        return base[:, None, :] + np.stack([r * np.cos(theta), r * np.sin(theta), z], axis=-1)  # [n, P, 3]

    return np.pi * radius * np.sqrt(radius**2 + height**2), sample


def torus(n: int, P: int, major: np.ndarray, minor: np.ndarray, center: np.ndarray, axis: int = 2) -> Part:
    """A torus around `axis`: uniform by area (the tube angle by rejection, up to 8 tries per point)."""

    def sample(rng: np.random.Generator) -> np.ndarray:
        theta = rng.uniform(0, 2 * np.pi, (n, P))
        phi = rng.uniform(0, 2 * np.pi, (n, P, 8))  # candidates for the tube angle
        keep = rng.random((n, P, 8)) < (major[:, None, None] + minor[:, None, None] * np.cos(phi)) / (major + minor)[:, None, None]
        first = np.where(keep.any(axis=-1), keep.argmax(axis=-1), 7)  # [n, P]
        phi = np.take_along_axis(phi, first[..., None], axis=-1)[..., 0]  # [n, P]
        ring = major[:, None] + minor[:, None] * np.cos(phi)
        local = np.stack([ring * np.cos(theta), ring * np.sin(theta), minor[:, None] * np.sin(phi)], axis=-1)
        return center[:, None, :] + _frame(local, axis)

    return 4 * np.pi**2 * major * minor, sample


# ----------------------------------------------------------------------------------------------
# the classes: parts from jittered dimensions


def _shape_parts(name: str, n: int, P: int, j: Callable[[float], np.ndarray]) -> list[Part]:
    """The parts of n clouds of class `name`; j(x) is x times a fresh jitter factor per cloud, [n]."""
    zero = np.zeros(n)

    def at(x, y, z) -> np.ndarray:  # [n, 3] from scalars or [n] arrays
        return np.stack([np.broadcast_to(np.asarray(c, dtype=float), (n,)) for c in (x, y, z)], axis=1)

    if name == "sphere":
        return [sphere(n, P, j(1.0), at(0, 0, 0))]
    if name == "cube":
        return [box(n, P, at(j(1.0), j(1.0), j(1.0)), at(0, 0, 0))]
    if name == "cylinder":
        r, h = j(0.5), j(1.2)
        return [wall(n, P, r, h, at(0, 0, 0)), disk(n, P, r, at(0, 0, h / 2)), disk(n, P, r, at(0, 0, -h / 2))]
    if name == "cone":
        r, h = j(0.6), j(1.2)
        return [cone(n, P, r, h, at(0, 0, 0)), disk(n, P, r, at(0, 0, 0))]
    if name == "torus":
        return [torus(n, P, j(0.7), j(0.25), at(0, 0, 0))]
    if name in ("table", "chair"):
        chair = name == "chair"
        w, d, top = (j(0.8), j(0.8), j(0.08)) if chair else (j(1.6), j(1.0), j(0.08))
        leg, t = (j(0.5), j(0.07)) if chair else (j(0.7), j(0.08))
        parts = [box(n, P, at(w, d, top), at(0, 0, leg + top / 2))]
        for sx in (-1, 1):
            for sy in (-1, 1):
                parts.append(box(n, P, at(t, t, leg), at(sx * (w - t) / 2, sy * (d - t) / 2, leg / 2)))
        if chair:
            back = j(0.8)
            parts.append(box(n, P, at(w, t, back), at(zero, -(d - t) / 2, leg + top + back / 2)))
        return parts
    if name == "lamp":
        pole, shade, r = j(1.2), j(0.35), j(0.4)
        return [disk(n, P, j(0.35), at(0, 0, 0)), wall(n, P, j(0.03), pole, at(0, 0, pole / 2)),
                cone(n, P, r, shade, at(zero, zero, pole - shade / 2))]
    if name == "mug":
        r, h, handle = j(0.4), j(0.9), j(0.22)
        return [wall(n, P, r, h, at(0, 0, h / 2)), disk(n, P, r, at(0, 0, 0)),
                torus(n, P, handle, j(0.05), at(r, zero, h / 2), axis=1)]
    if name == "plane":
        r, length, span = j(0.12), j(1.8), j(1.8)
        tail = -length / 2 + 0.1
        return [wall(n, P, r, length, at(0, 0, 0), axis=0), disk(n, P, r, at(length / 2, zero, zero), axis=0),
                disk(n, P, r, at(-length / 2, zero, zero), axis=0),
                box(n, P, at(j(0.35), span, j(0.03)), at(j(0.05), zero, zero)),
                box(n, P, at(j(0.25), j(0.03), j(0.35)), at(tail, zero, r + 0.15)),
                box(n, P, at(j(0.2), j(0.6), j(0.03)), at(tail, zero, zero))]
    raise ValueError(f"unknown shape class '{name}'")


def sample_clouds(name: str, n: int, cfg: SynthShapes3dConfig, rng: np.random.Generator) -> np.ndarray:
    """n clouds of class `name` (module docstring): [n, n_points, 3] float32."""
    P = cfg.n_points

    def j(x: float) -> np.ndarray:
        return x * rng.uniform(1 - cfg.jitter, 1 + cfg.jitter, n)  # [n]

    parts = _shape_parts(name, n, P, j)
    area = np.stack([a for a, _ in parts], axis=1)  # [n, K]
    candidates = np.stack([s(rng) for _, s in parts], axis=2)  # [n, P, K, 3]: a point on every part
    cum = np.cumsum(area / area.sum(axis=1, keepdims=True), axis=1)  # [n, K]
    pick = np.minimum((rng.random((n, P, 1)) > cum[:, None, :]).sum(axis=-1), len(parts) - 1)  # [n, P]
    pts = np.take_along_axis(candidates, pick[..., None, None].repeat(3, axis=-1), axis=2)[:, :, 0]  # [n, P, 3]
    pts = pts * rng.uniform(*cfg.scale, (n, 1, 3))  # anisotropic scale
    pts -= pts.mean(axis=1, keepdims=True)
    pts /= np.linalg.norm(pts, axis=-1).max(axis=1)[:, None, None]  # unit ball
    angle = rng.uniform(0, 2 * np.pi, n)
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    x, y = pts[..., 0], pts[..., 1]
    pts = np.stack([c * x - s * y, s * x + c * y, pts[..., 2]], axis=-1)  # rotation about z
    pts += cfg.noise * rng.normal(size=pts.shape)
    return pts.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# the task


class SynthShapes3dConfig(ComponentConfig):
    name: Literal["synth_shapes3d"] = "synth_shapes3d"
    classes: list[Literal[CLASSES]] = Field(default_factory=lambda: list(CLASSES), min_length=2)  # type: ignore[valid-type]
    n_points: int = Field(default=512, ge=8)
    n_pretrain: int = Field(default=4000, ge=1)
    n_probe_train: int = Field(default=1000, ge=10)
    n_probe_test: int = Field(default=1000, ge=10)
    jitter: float = Field(default=0.2, ge=0.0, lt=1.0)  # part-proportion jitter (relative)
    scale: tuple[float, float] = (0.8, 1.2)  # per-axis scale factor
    noise: float = Field(default=0.01, ge=0.0)  # per-coordinate Gaussian noise after normalization
    data_seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> SynthShapes3dConfig:
        check_interval("scale", self.scale, 0)
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes {self.classes} repeat a class")
        return self

    def held_bytes(self) -> dict[str, int]:
        """Every split as float32 points, plus the per-part candidates while one class is drawn (x 8 parts)."""
        per_cloud = 4 * 3 * self.n_points
        return {"n_pretrain": 8 * self.n_pretrain * per_cloud, "n_probe_train": self.n_probe_train * per_cloud,
                "n_probe_test": self.n_probe_test * per_cloud}

    def dry_config(self, batch_size: int = 16) -> SynthShapes3dConfig:
        small = {"n_pretrain": min(self.n_pretrain, batch_size), "n_probe_train": min(self.n_probe_train, 20),
                 "n_probe_test": min(self.n_probe_test, 20)}
        return self.model_copy(update=small)


def draw_split(cfg: SynthShapes3dConfig, size: int, rng: np.random.Generator) -> LabeledBatch:
    """`size` clouds, classes balanced round-robin, shuffled: inputs [size, n_points, 3], labels [size]."""
    labels = np.arange(size) % len(cfg.classes)
    clouds = np.empty((size, cfg.n_points, 3), dtype=np.float32)
    for k, name in enumerate(cfg.classes):
        idx = np.flatnonzero(labels == k)
        if len(idx):
            clouds[idx] = sample_clouds(name, len(idx), cfg, rng)
    order = rng.permutation(size)
    return LabeledBatch(torch.from_numpy(clouds[order]), torch.from_numpy(labels[order]).long())


class SynthShapes3d:
    def __init__(self, cfg: SynthShapes3dConfig, seed: int) -> None:
        self.cfg = cfg
        self.seed = seed  # unused: every split comes from data_seed, batch order from the run's generator
        self.n_classes = len(cfg.classes)
        self.input_spec = PointCloudInput(cfg.n_points)
        rng = np.random.default_rng(cfg.data_seed)
        self.pretrain = draw_split(cfg, cfg.n_pretrain, rng)
        self._fit = draw_split(cfg, cfg.n_probe_train, rng)
        self._test = draw_split(cfg, cfg.n_probe_test, rng)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[LabeledBatch]:
        return epoch_batches(self.pretrain, batch_size, generator)

    def eval_splits(self) -> dict[str, LabeledBatch]:
        return {"train": self._fit, "test": self._test}


@TASKS.register("synth_shapes3d", SynthShapes3dConfig)
def build_synth_shapes3d(cfg: SynthShapes3dConfig, seed: int) -> SynthShapes3d:
    return SynthShapes3d(cfg, seed)
