"""A tiny labelled image task and a tiny ViT for the SSL unit tests (no sklearn, no data generation cost)."""

from __future__ import annotations

import torch

from baselines.ssl.encoder import TokenEncoder, ViTConfig, build_vit
from baselines.tasks.labeled import GridInput, LabeledBatch


class FakeImageTask:
    """Random 1x8x8 images whose mean brightness depends on the label (so a probe can beat chance)."""

    channels = 1
    image_size = 8
    n_classes = 3
    input_spec = GridInput(1, (8, 8))

    def __init__(self, n_train: int = 60, n_test: int = 30) -> None:
        gen = torch.Generator().manual_seed(0)
        self._train = self.sample(n_train, gen)
        self._test = self.sample(n_test, gen)

    def sample(self, n: int, generator: torch.Generator) -> LabeledBatch:
        labels = torch.randint(0, self.n_classes, (n,), generator=generator)  # [n]
        images = torch.randn(n, 1, 8, 8, generator=generator) + labels.view(n, 1, 1, 1).float()  # [n, 1, 8, 8]
        return LabeledBatch(images, labels)

    def train_batches(self, batch_size: int, generator: torch.Generator):
        while True:
            yield self.sample(batch_size, generator)

    def eval_splits(self) -> dict[str, LabeledBatch]:
        return {"train": self._train, "test": self._test}


def tiny_vit(seed: int = 0, patch_size: int = 2) -> TokenEncoder:
    """A 2-layer ViT on 8x8 images: a 4x4 grid of 2x2 patches (or 2x2 of 4x4)."""
    torch.manual_seed(seed)
    return build_vit(ViTConfig(name="vit", patch_size=patch_size, d_model=16, n_layers=2, n_heads=2), FakeImageTask())
