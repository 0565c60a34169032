"""Synthetic UI screen recordings whose label is an ordered intent: `synth_ui_video`, the UI-JEPA half of the
multimodal_jepa suite (arXiv 2409.04081: UI action videos -> intent text).

One sample is a short recording of `n_frames` frames of `size` x `size` pixels (inputs [B, T, H, W] float32): an
app screen (one of 4 layouts: a header whose bright segment names the app, and 3 buttons, 3 x 3 squares, at
the app's own positions) on which a tap marker (a bright plus) presses buttons one after the other.  A pressed
button stays highlighted for the rest of the recording, so the last frame shows WHICH buttons were pressed but
not in which ORDER: the order is only in the timing.  Nuisances per sample: the frames of the taps (jittered),
a scroll offset of the whole screen (-1..1 pixels each way), the highlight's brightness and Gaussian pixel
noise.

Intents (36 classes, label = app * 9 + k):
    k in 0..5   two steps, the ordered pairs (0,1), (1,0), (0,2), (2,0), (1,2), (2,1): k and k ^ 1 differ only in
                the order of the steps (the order-flipped pairs); taps at frames t1 in {1, 2}, t2 in {4, 5}
    k in 6..8   one step, button k - 6 (order-free); tap at a frame in 1..5
The intent's text (`texts[label]`, [L] token ids of `VOCAB`, PAD-filled): "<bos> open app<a> tap btn<b1> tap
btn<b2> <eos>" or "<bos> open app<a> tap btn<b> <eos>": what the intent decoder generates.

`eval_subset` picks the score split ("test") a probe or decoder is scored on: `all`, `ordered` (the two-step
intents, whose order-flipped twin shares every button: order-dependent) or `single`; the fit split ("train") is
always all intents.  Every draw comes from the torch generator: the training stream is deterministic per
generator; the eval splits are drawn once from `eval_seed` (the same for every run), every intent
equally often.
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

N_APPS, N_BUTTONS, PER_APP = 4, 3, 9
PAIRS = ((0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1))  # k = 0..5; k ^ 1 is k's order-flipped twin
BUTTONS = (  # top-left (row, col) of each app's 3 buttons (3 x 3 squares), on a 16 x 16 screen
    ((4, 2), (4, 11), (11, 6)),
    ((5, 6), (11, 2), (11, 11)),
    ((4, 2), (8, 7), (12, 12)),
    ((12, 2), (5, 11), (8, 6)),
)
VOCAB = ("<pad>", "<bos>", "<eos>", "open", "tap", *(f"app{a}" for a in range(N_APPS)), *(f"btn{b}" for b in range(N_BUTTONS)))
PAD, BOS, EOS, OPEN, TAP, APP0, BTN0 = 0, 1, 2, 3, 4, 5, 5 + N_APPS
TEXT_LEN = 8  # <bos> open app tap btn tap btn <eos>


@dataclass(frozen=True)
class VideoInput:
    """Inputs [B, frames, H, W]: single-channel frames on a (row, col) grid, in time order."""

    frames: int
    size: tuple[int, int]


def steps_of(label: int) -> tuple[int, tuple[int, ...]]:
    """(app, the buttons pressed in order) of an intent label."""
    app, k = divmod(label, PER_APP)
    return app, (PAIRS[k] if k < len(PAIRS) else (k - len(PAIRS),))


def is_ordered(labels: torch.Tensor) -> torch.Tensor:
    """labels [S] -> [S] bool: two-step intents (those with an order-flipped twin)."""
    return labels % PER_APP < len(PAIRS)


def flipped(label: int) -> int:
    """The order-flipped twin of a two-step intent (the same buttons, the other order)."""
    app, k = divmod(label, PER_APP)
    if k >= len(PAIRS):
        raise ValueError(f"intent {label} has one step: no order-flipped twin")
    return app * PER_APP + (k ^ 1)


def intent_text(label: int) -> list[int]:
    """The intent's token ids (VOCAB), <bos> ... <eos> padded to TEXT_LEN."""
    app, steps = steps_of(label)
    ids = [BOS, OPEN, APP0 + app, *(t for b in steps for t in (TAP, BTN0 + b)), EOS]
    return ids + [PAD] * (TEXT_LEN - len(ids))


class UIVideoConfig(ComponentConfig):
    name: Literal["synth_ui_video"] = "synth_ui_video"
    n_frames: int = Field(default=8, ge=8)  # taps happen in frames 1..5 (+1 for the highlight)
    size: Literal[16] = 16  # the button layouts are drawn for 16 x 16 screens
    noise: float = Field(default=0.15, ge=0.0)  # std of the Gaussian pixel noise
    eval_subset: Literal["all", "ordered", "single"] = "all"  # the score split's intents (module docstring)
    probe_train_size: int = Field(default=1000, ge=36)
    probe_test_size: int = Field(default=600, ge=36)
    eval_seed: int = 1357

    def held_bytes(self) -> dict[str, int]:
        per_example = 4 * self.n_frames * self.size * self.size
        return {"probe_train_size": self.probe_train_size * per_example, "probe_test_size": self.probe_test_size * per_example}

    def dry_config(self, batch_size: int = 16) -> UIVideoConfig:
        return self.model_copy(update={"probe_train_size": 36, "probe_test_size": 36})


def render(labels: torch.Tensor, times: torch.Tensor, shift: torch.Tensor, glow: torch.Tensor, n_frames: int) -> torch.Tensor:
    """Noise-free recordings [n, T, 16, 16] of intents `labels` [n] with tap frames `times` [n, 2] (the second
    unused by one-step intents), scroll `shift` [n, 2] (pixels) and highlight brightness `glow` [n]."""
    n = len(labels)
    video = torch.zeros(n, n_frames, 16, 16)
    for i in range(n):
        app, steps = steps_of(int(labels[i]))
        screen = video[i]  # [T, 16, 16]
        screen[:, 0:2, :] = 0.3
        screen[:, 0:2, 4 * app:4 * app + 4] = 1.0  # the header names the app
        for r, c in BUTTONS[app]:
            screen[:, r:r + 3, c:c + 3] = 0.5
            screen[:, r + 1, c + 1] = 0.0  # an outlined button
        for step, b in enumerate(steps):
            r, c = BUTTONS[app][b]
            t = int(times[i, step])
            screen[t + 1:, r:r + 3, c:c + 3] = float(glow[i])  # highlighted from the frame after the tap
            screen[t, r + 1, c:c + 3] = 1.5  # the tap marker: a bright plus over the button
            screen[t, r:r + 3, c + 1] = 1.5
        video[i] = torch.roll(screen, shifts=(int(shift[i, 0]), int(shift[i, 1])), dims=(1, 2))
    return video


class UIVideoTask:
    n_classes = N_APPS * PER_APP

    def __init__(self, cfg: UIVideoConfig, seed: int) -> None:
        self.cfg = cfg
        self.seed = seed  # unused: training data come from the generator, eval data from eval_seed
        self.input_spec = VideoInput(cfg.n_frames, (cfg.size, cfg.size))
        self.vocab = VOCAB
        self.texts = torch.tensor([intent_text(k) for k in range(self.n_classes)])  # [C, L]
        gen = torch.Generator().manual_seed(cfg.eval_seed)
        self._fit, test = self.draw(cfg.probe_train_size, gen, balanced=True), self.draw(cfg.probe_test_size, gen, balanced=True)
        keep = {"all": torch.ones(len(test), dtype=torch.bool), "ordered": is_ordered(test.labels),
                "single": ~is_ordered(test.labels)}[cfg.eval_subset]
        self._test = test.subset(keep.nonzero()[:, 0])

    def draw(self, n: int, generator: torch.Generator, balanced: bool = False) -> LabeledBatch:
        """n recordings [n, T, 16, 16] with uniformly drawn intents [n] (balanced: every intent equally often, up
        to one, in random order: the eval splits, so that small ones still stratify)."""
        if balanced:
            labels = (torch.arange(n) % self.n_classes)[torch.randperm(n, generator=generator)]  # [n]
        else:
            labels = torch.randint(0, self.n_classes, (n,), generator=generator)  # [n]
        two = torch.stack([torch.randint(1, 3, (n,), generator=generator), torch.randint(4, 6, (n,), generator=generator)], 1)
        one = torch.randint(1, 6, (n, 1), generator=generator).expand(n, 2)
        times = torch.where(is_ordered(labels)[:, None], two, one)  # [n, 2]
        shift = torch.randint(-1, 2, (n, 2), generator=generator)  # [n, 2]
        glow = 0.7 + 0.3 * torch.rand(n, generator=generator)  # [n]
        video = render(labels, times, shift, glow, self.cfg.n_frames)
        video = video + self.cfg.noise * torch.randn(video.shape, generator=generator)
        return LabeledBatch(video, labels)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[LabeledBatch]:
        """Infinite stream of freshly drawn recordings."""
        while True:
            yield self.draw(batch_size, generator)

    def eval_splits(self) -> dict[str, LabeledBatch]:
        return {"train": self._fit, "test": self._test}


@TASKS.register("synth_ui_video", UIVideoConfig)
def build_ui_video(cfg: UIVideoConfig, seed: int) -> UIVideoTask:
    return UIVideoTask(cfg, seed)
