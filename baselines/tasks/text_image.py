"""Synthetic captioned images whose label needs both modalities on a known subset: `synth_text_image`, the TI-JEPA
half of the multimodal_jepa suite (arXiv 2503.06380: text-image fusion, multimodal sentiment).

One sample is a 16 x 16 image and a 5-word caption, packed into one row: inputs [B, 256 + 5] float32, the pixels
row-major then the caption's word ids (as floats, like a table's categorical codes); `ImageTextInput` says where
the parts are (the `image_part` and `caption` tokenizers of baselines/ssl/text_image.py read them).

    image    a face icon (5 x 5: an outline, two eyes, a mouth curving up = smiling or down = frowning) in the
             upper half, an object (square, disc or cross; big 5 x 5 or small 3 x 3) in the lower half, at
             random positions; Gaussian pixel noise
    caption  "<det> <size> <shape> <verb> <mood>": det, verb drawn freely; size and shape name the image's
             object (so the caption says something about the image: text helps predict image blocks); mood a
             positive (happy, glad, cheerful), negative (sad, gloomy, upset) or neutral (here, there, today) word

Caption kinds, drawn per sample: neutral mood word (share 1 - `polar_share`); a polar word that AGREES with the
face (smiling + positive, frowning + negative); a polar word that CONTRADICTS the face (half the polar captions).
The label is sarcasm: 1 when the caption contradicts the face, else 0.

Why it needs both modalities on a known subset: on the polar captions (the `interaction` subset) the label is
XOR(face smiles, caption is positive), which no sum f(image) + g(text) thresholds: a linear probe on the
concatenated unimodal features (late fusion) can get at most 3 of the 4 (face, mood) cells right, ~75% on a
balanced subset, whatever the encoders; on neutral captions the label is 0 from the text alone.
`eval_subset` picks the score split ("test"): `all`, `interaction` (polar captions) or `neutral`; the fit split
("train") is always all samples.  Every draw comes from the torch generator; the eval splits are drawn once
from `eval_seed`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import Field

from baselines.tasks.labeled import LabeledBatch
from harness.components import TASKS
from harness.registry import ComponentConfig

DETS, SIZES, SHAPES, VERBS = ("a", "the"), ("small", "big"), ("square", "disc", "cross"), ("is", "looks", "seems")
POSITIVE, NEGATIVE, NEUTRAL = ("happy", "glad", "cheerful"), ("sad", "gloomy", "upset"), ("here", "there", "today")
WORDS = (*DETS, *SIZES, *SHAPES, *VERBS, *POSITIVE, *NEGATIVE, *NEUTRAL)
SLOTS = (DETS, SIZES, SHAPES, VERBS)  # the first four words, in order; the mood word is the fifth
SIZE, CAPTION_LEN = 16, 5


@dataclass(frozen=True)
class ImageTextInput:
    """Inputs [B, H*W + text_len]: a single-channel H x W image (row-major) then `text_len` word ids < vocab_size."""

    size: tuple[int, int]
    text_len: int
    vocab_size: int


def word_id(word: str) -> int:
    return WORDS.index(word)


def face(smiling: bool) -> torch.Tensor:
    """The 5 x 5 face icon."""
    icon = torch.zeros(5, 5)
    icon[0, 1:4] = icon[4, 1:4] = icon[1:4, 0] = icon[1:4, 4] = 0.6  # outline
    icon[1, 1] = icon[1, 3] = 1.0  # eyes
    if smiling:
        icon[3, 1:4], icon[2, 1], icon[2, 3] = 1.0, 1.0, 1.0  # corners up
    else:
        icon[2, 1:4], icon[3, 1], icon[3, 3] = 1.0, 1.0, 1.0  # corners down
    return icon


def shape(kind: int, big: bool) -> torch.Tensor:
    n = 5 if big else 3
    yy, xx = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    c = (n - 1) / 2
    if kind == 0:
        return torch.ones(n, n)  # square
    if kind == 1:
        return (((yy - c) ** 2 + (xx - c) ** 2) <= c**2 + 0.5).float()  # disc
    return ((yy == c) | (xx == c)).float()  # cross


def caption(size: int, kind: int, mood: int, generator: torch.Generator) -> list[int]:
    """Word ids of one caption; mood: +1 positive, -1 negative, 0 neutral word."""
    pick = torch.randint(0, 3, (3,), generator=generator).tolist()
    det, verb = torch.randint(0, 2, (1,), generator=generator).item(), pick[0]
    mood_word = {1: POSITIVE, -1: NEGATIVE, 0: NEUTRAL}[mood][pick[1]]
    return [word_id(DETS[det]), word_id(SIZES[size]), word_id(SHAPES[kind]), word_id(VERBS[verb]), word_id(mood_word)]


class TextImageConfig(ComponentConfig):
    name: Literal["synth_text_image"] = "synth_text_image"
    polar_share: float = Field(default=0.6, gt=0.0, lt=1.0)  # captions with a mood word (the interaction subset)
    noise: float = Field(default=0.2, ge=0.0)  # std of the Gaussian pixel noise
    eval_subset: Literal["all", "interaction", "neutral"] = "all"
    probe_train_size: int = Field(default=1500, ge=20)
    probe_test_size: int = Field(default=1000, ge=20)
    eval_seed: int = 97531

    def held_bytes(self) -> dict[str, int]:
        per_example = 4 * (SIZE * SIZE + CAPTION_LEN)
        return {"probe_train_size": self.probe_train_size * per_example, "probe_test_size": self.probe_test_size * per_example}

    def dry_config(self, batch_size: int = 16) -> TextImageConfig:
        return self.model_copy(update={"probe_train_size": 40, "probe_test_size": 40})


@dataclass
class Drawn:
    """One draw's factors, [n] each: face smiles, caption mood (+1, -1, 0), object kind and size."""

    smiling: torch.Tensor
    mood: torch.Tensor
    kind: torch.Tensor
    big: torch.Tensor

    @property
    def labels(self) -> torch.Tensor:
        """Sarcasm: a polar caption whose mood contradicts the face."""
        return ((self.mood != 0) & ((self.mood > 0) != self.smiling)).long()


class TextImageTask:
    n_classes = 2

    def __init__(self, cfg: TextImageConfig, seed: int) -> None:
        self.cfg = cfg
        self.seed = seed  # unused: training data come from the generator, eval data from eval_seed
        self.input_spec = ImageTextInput((SIZE, SIZE), CAPTION_LEN, len(WORDS))
        gen = torch.Generator().manual_seed(cfg.eval_seed)
        self._fit, test = self.draw(cfg.probe_train_size, gen), self.draw(cfg.probe_test_size, gen)
        polar = test.inputs[:, -1].long() >= word_id(POSITIVE[0])
        polar &= test.inputs[:, -1].long() < word_id(NEUTRAL[0])  # [S]: a mood word in the caption
        keep = {"all": torch.ones_like(polar), "interaction": polar, "neutral": ~polar}[cfg.eval_subset]
        self._test = test.subset(keep.nonzero()[:, 0])

    def factors(self, n: int, generator: torch.Generator) -> Drawn:
        smiling = torch.rand(n, generator=generator) < 0.5
        polar = torch.rand(n, generator=generator) < self.cfg.polar_share
        agree = torch.rand(n, generator=generator) < 0.5
        face_mood = smiling.long() * 2 - 1  # +1 smiling, -1 frowning
        mood = torch.where(polar, torch.where(agree, face_mood, -face_mood), torch.zeros_like(face_mood))
        kind = torch.randint(0, 3, (n,), generator=generator)
        big = torch.rand(n, generator=generator) < 0.5
        return Drawn(smiling, mood, kind, big)

    def render(self, d: Drawn, generator: torch.Generator) -> torch.Tensor:
        """Packed inputs [n, 256 + 5] of the factors d."""
        n = len(d.smiling)
        images = torch.zeros(n, SIZE, SIZE)
        face_at = torch.stack([torch.randint(0, 3, (n,), generator=generator),  # rows 0..6: the upper half
                               torch.randint(0, SIZE - 5 + 1, (n,), generator=generator)], dim=1)  # [n, 2]
        shape_at = torch.randint(0, SIZE - 5 + 1, (n,), generator=generator)
        texts = []
        for i in range(n):
            r, c = face_at[i].tolist()
            images[i, r:r + 5, c:c + 5] = face(bool(d.smiling[i]))
            obj = shape(int(d.kind[i]), bool(d.big[i]))
            top = 9 + (5 - obj.shape[0]) // 2
            images[i, top:top + obj.shape[0], int(shape_at[i]):int(shape_at[i]) + obj.shape[1]] = 0.8 * obj
            texts.append(caption(int(d.big[i]), int(d.kind[i]), int(d.mood[i]), generator))
        images = images + self.cfg.noise * torch.randn(images.shape, generator=generator)
        return torch.cat([images.flatten(1), torch.tensor(texts, dtype=torch.float32)], dim=1)  # [n, 261]

    def draw(self, n: int, generator: torch.Generator) -> LabeledBatch:
        d = self.factors(n, generator)
        return LabeledBatch(self.render(d, generator), d.labels)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[LabeledBatch]:
        while True:
            yield self.draw(batch_size, generator)

    def eval_splits(self) -> dict[str, LabeledBatch]:
        return {"train": self._fit, "test": self._test}


@TASKS.register("synth_text_image", TextImageConfig)
def build_text_image(cfg: TextImageConfig, seed: int) -> TextImageTask:
    return TextImageTask(cfg, seed)
