"""Image classification data for self-supervised pre-training (JEPA, MAE) and linear / k-NN probing.

Two tasks, both single-channel and square (H == W == image_size):

* `digits`: scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes, no download), split
  once into a stratified train/test part (`test_fraction`, `split_seed`), optionally upsampled bilinearly to
  `image_size` (so that a ViT's patch grid is not too coarse), standardized with the mean and std of the
  train part's pixels.  Training batches are drawn from the train part only (a fresh permutation per epoch).

* `shapes`: synthetic images built so that the pixel variance and the label live in DIFFERENT components,
  the test bed of the jepa_vs_mae suite:

      image = shape + grating + noise            (then standardized, see below)

      shape    one of n_classes shapes (square, disc, triangle, cross, ring, diamond; label = its index),
               random centre and size, drawn with LOW amplitude `shape_amplitude` on a zero background
      grating  texture_amplitude * sin(2 pi f (x cos t + y sin t) + phi), with random orientation t,
               frequency f (cycles per pixel, in `texture_freq`) and phase phi per image
      noise    i.i.d. Gaussian pixel noise of std `noise_std`

  The grating and the noise are drawn independently of the label, so they carry NO label information, yet
  with the defaults they hold ~96% of the pixel variance (per-pixel variance over images: grating
  A^2/2 = 2.0, noise 1.0, shape ~0.12; see `ShapesTask.components`).  This separates "predictive" from "high-variance"
  features (Littwin et al. 2024, "How JEPA Avoids Noisy Features"): an objective in pixel space (MAE)
  is rewarded in proportion to explained pixel variance, so its features are pulled towards the grating
  and it cannot stop paying for the i.i.d. noise (high variance, unpredictable from any context); an
  objective that predicts latent features of one region from another (JEPA) is rewarded for features
  that are predictable across regions, and is free to drop the unpredictable noise and the nuisance
  texture.  The shape is the low-variance feature that a good representation must keep: a linear probe
  on the frozen features measures whether it did.

  Every draw (label, shape geometry, grating, noise) comes from the torch generator, so the training
  stream is deterministic per generator.  The eval splits ("train" for fitting a probe, "test" for
  scoring it) are drawn once from `eval_seed`: identical for every run seed.  Standardization uses the
  mean and std of the eval "train" split's pixels (hence also independent of the run seed).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from baselines.tasks.labeled import GridInput, LabeledBatch, LabeledTask, epoch_batches
from baselines.tasks.ranges import check_interval
from harness.components import TASKS, Task
from harness.registry import ComponentConfig


@runtime_checkable
class ImageTask(LabeledTask, Protocol):
    """A labelled task over square images: batches and eval splits are `LabeledBatch`es of inputs
    [B, C, H, W].  train_batches(batch_size, generator) is an infinite stream, deterministic per generator;
    eval_splits() -> {"train", "test"} are fixed sets (a probe is fit on "train" and scored on "test")."""

    channels: int
    image_size: int  # H == W


def image_task(task: Task, user: str) -> ImageTask:
    """The task as an ImageTask, or a clear error naming the component that needs one."""
    if not isinstance(task, ImageTask):
        raise TypeError(f"{user} needs an image task; {type(task).__name__} is not one")
    return task


def _standardize(images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    return ((images - mean) / std).float()


# ----------------------------------------------------------------------------------------------
# digits


class DigitsConfig(ComponentConfig):
    image_size: int = Field(default=16, ge=8, le=64)  # 8 = native resolution, else bilinear upsampling
    test_fraction: float = Field(default=0.25, gt=0.0, lt=1.0)
    split_seed: int = 0

    def held_bytes(self) -> dict[str, int]:
        return {"image_size": 1797 * 4 * self.image_size**2 * 2}  # float32 images, once upsampled and once standardized


class DigitsTask:
    channels = 1
    n_classes = 10

    def __init__(self, cfg: DigitsConfig, seed: int) -> None:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        self.cfg = cfg
        self.seed = seed  # unused: train batches come from the generator, the split from split_seed
        self.image_size = cfg.image_size
        self.input_spec = GridInput(self.channels, (cfg.image_size, cfg.image_size))
        data = load_digits()
        images = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0  # [1797, 1, 8, 8] in [0, 1]
        labels = torch.tensor(data.target, dtype=torch.long)  # [1797]
        if cfg.image_size != 8:
            images = F.interpolate(images, size=cfg.image_size, mode="bilinear", align_corners=False)
        train_idx, test_idx = train_test_split(
            torch.arange(len(labels)).numpy(),
            test_size=cfg.test_fraction,
            random_state=cfg.split_seed,
            stratify=labels.numpy(),
        )
        train_idx, test_idx = torch.as_tensor(train_idx), torch.as_tensor(test_idx)
        self.train_index, self.test_index = train_idx, test_idx  # positions in load_digits(), disjoint
        mean, std = images[train_idx].mean().item(), images[train_idx].std().item()
        images = _standardize(images, mean, std)
        self._train = LabeledBatch(images[train_idx], labels[train_idx])
        self._test = LabeledBatch(images[test_idx], labels[test_idx])

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[LabeledBatch]:
        """Infinite stream of batches from the train part: epochs of fresh permutations, back to back."""
        return epoch_batches(self._train, batch_size, generator)

    def eval_splits(self) -> dict[str, LabeledBatch]:
        return {"train": self._train, "test": self._test}


@TASKS.register("digits", DigitsConfig)
def build_digits(cfg: DigitsConfig, seed: int) -> DigitsTask:
    return DigitsTask(cfg, seed)


# ----------------------------------------------------------------------------------------------
# shapes

SHAPES = ("square", "disc", "triangle", "cross", "ring", "diamond")


class ShapesConfig(ComponentConfig):
    image_size: int = Field(default=16, ge=8, le=64)
    n_classes: int = Field(default=5, ge=2, le=len(SHAPES))  # the first n_classes of SHAPES
    shape_amplitude: float = Field(default=1.0, ge=0.0)
    shape_size: tuple[float, float] = (0.2, 0.35)  # half-extent of a shape, as a fraction of image_size
    texture_amplitude: float = Field(default=2.0, ge=0.0)
    texture_freq: tuple[float, float] = (0.1, 0.4)  # grating frequency in cycles per pixel (Nyquist = 0.5)
    noise_std: float = Field(default=1.0, ge=0.0)
    probe_train_size: int = Field(default=2000, ge=1)  # eval split "train": what a probe is fit on
    probe_test_size: int = Field(default=1000, ge=1)  # eval split "test": what a probe is scored on
    eval_seed: int = 1234

    def held_bytes(self) -> dict[str, int]:
        """The probe's eval splits: float32 images, built from three components each."""
        per_image = 4 * self.image_size**2 * 4
        return {"probe_train_size": self.probe_train_size * per_image, "probe_test_size": self.probe_test_size * per_image}

    def dry_config(self, batch_size: int = 16) -> ShapesConfig:
        return self.model_copy(update={"probe_train_size": min(self.probe_train_size, 32), "probe_test_size": min(self.probe_test_size, 32)})

    @model_validator(mode="after")
    def _check(self) -> ShapesConfig:
        check_interval("shape_size", self.shape_size, 0.0, 0.5)
        check_interval("texture_freq", self.texture_freq, 0.0, 0.5)
        if self.shape_size[0] * self.image_size < 1.5:
            raise ValueError(
                f"shapes of half-extent {self.shape_size[0]} * {self.image_size} = "
                f"{self.shape_size[0] * self.image_size:.2f} pixels are too small to tell apart (need >= 1.5)"
            )
        if self.shape_amplitude == self.texture_amplitude == self.noise_std == 0:
            raise ValueError("shape_amplitude, texture_amplitude and noise_std are all 0: the images are blank")
        return self


def shape_masks(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Indicator of every shape in SHAPES at normalized coordinates u, v ([...], 0 = centre, +-1 = half-extent
    along x / y): [len(SHAPES), ...] float32 in {0, 1}."""
    radius = torch.sqrt(u**2 + v**2)
    masks = [
        torch.maximum(u.abs(), v.abs()) <= 0.8,  # square (0.8: area close to the disc's)
        radius <= 1.0,  # disc
        (v <= 0.8) & (u.abs() <= (v + 1.0) / 1.8 * 0.9),  # triangle, apex up (image y grows downwards)
        ((u.abs() <= 0.3) & (v.abs() <= 1.0)) | ((v.abs() <= 0.3) & (u.abs() <= 1.0)),  # cross
        (radius <= 1.0) & (radius >= 0.55),  # ring
        u.abs() + v.abs() <= 1.0,  # diamond
    ]
    return torch.stack(masks).float()


class ShapesTask:
    channels = 1

    def __init__(self, cfg: ShapesConfig, seed: int) -> None:
        self.cfg = cfg
        self.seed = seed  # unused: train data come from the generator, eval data from eval_seed
        self.image_size = cfg.image_size
        self.input_spec = GridInput(self.channels, (cfg.image_size, cfg.image_size))
        self.n_classes = cfg.n_classes
        gen = torch.Generator().manual_seed(cfg.eval_seed)
        train = self.components(cfg.probe_train_size, gen)
        test = self.components(cfg.probe_test_size, gen)
        raw_train = train["shape"] + train["texture"] + train["noise"]  # [N, 1, S, S]
        self.mean, self.std = raw_train.mean().item(), raw_train.std().item()
        self._train = self._batch(train)
        self._test = self._batch(test)

    def components(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """n images as separate components, before standardization: "shape", "texture" (the grating) and
        "noise", each [n, 1, S, S] float32, and "labels" [n] long.  The image is their sum."""
        cfg, S = self.cfg, self.image_size
        labels = torch.randint(0, cfg.n_classes, (n,), generator=generator)  # [n]
        lo, hi = cfg.shape_size
        half = S * (lo + (hi - lo) * torch.rand(n, generator=generator))  # [n] half-extent in pixels
        cx = half + (S - 2 * half) * torch.rand(n, generator=generator)  # [n] centre, shape inside the image
        cy = half + (S - 2 * half) * torch.rand(n, generator=generator)
        pos = torch.arange(S, dtype=torch.float32) + 0.5  # pixel centres
        x, y = pos.view(1, 1, S), pos.view(1, S, 1)
        u = (x - cx.view(n, 1, 1)) / half.view(n, 1, 1)  # [n, S, S] (broadcast over rows / columns)
        v = (y - cy.view(n, 1, 1)) / half.view(n, 1, 1)
        masks = shape_masks(u.expand(n, S, S), v.expand(n, S, S))  # [K, n, S, S]
        shape = masks[labels, torch.arange(n)]  # [n, S, S]: each image's own shape

        theta = math.pi * torch.rand(n, generator=generator)  # [n] orientation
        f_lo, f_hi = cfg.texture_freq
        freq = f_lo + (f_hi - f_lo) * torch.rand(n, generator=generator)  # [n] cycles per pixel
        phase = 2 * math.pi * torch.rand(n, generator=generator)  # [n]
        along = x * torch.cos(theta).view(n, 1, 1) + y * torch.sin(theta).view(n, 1, 1)  # [n, S, S]
        texture = torch.sin(2 * math.pi * freq.view(n, 1, 1) * along + phase.view(n, 1, 1))
        noise = torch.randn(n, S, S, generator=generator)
        return {
            "shape": (cfg.shape_amplitude * shape).unsqueeze(1),
            "texture": (cfg.texture_amplitude * texture).unsqueeze(1),
            "noise": (cfg.noise_std * noise).unsqueeze(1),
            "labels": labels,
        }

    def _batch(self, parts: dict[str, torch.Tensor]) -> LabeledBatch:
        images = parts["shape"] + parts["texture"] + parts["noise"]  # [n, 1, S, S]
        return LabeledBatch(_standardize(images, self.mean, self.std), parts["labels"])

    def sample(self, n: int, generator: torch.Generator) -> LabeledBatch:
        """n standardized images drawn with the generator."""
        return self._batch(self.components(n, generator))

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[LabeledBatch]:
        """Infinite stream of freshly drawn [batch_size, 1, S, S] batches."""
        while True:
            yield self.sample(batch_size, generator)

    def eval_splits(self) -> dict[str, LabeledBatch]:
        return {"train": self._train, "test": self._test}


@TASKS.register("shapes", ShapesConfig)
def build_shapes(cfg: ShapesConfig, seed: int) -> ShapesTask:
    return ShapesTask(cfg, seed)
