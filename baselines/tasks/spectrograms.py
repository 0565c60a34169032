"""Synthetic log-spectrograms for A-JEPA-style pre-training: `synth_spectro`, the test bed of the audio_jepa suite.

One sample is an energy spectrogram of `n_freq` frequency bins x `n_frames` frames (inputs [B, 1, F, T], axes
("freq", "time")), a harmonic tone plus nuisances, then Gaussian smoothing (sigma 1 bin / frame), log and
standardization with the fit split's mean and std.  8 classes = 3 binary factors of the tone:

    harmonics   all (f0, 2 f0, 3 f0, ...) or odd only (f0, 3 f0, 5 f0, ...) below n_freq
    formant     the partials' amplitudes follow a low (centre 0.25 F) or a high (centre 0.65 F) spectral bump
    envelope    steady, or amplitude-modulated with period `am_period` frames (cos, depth 0.9)

Each partial is a Gaussian line of width 0.6 bins in frequency.  Nuisances, drawn per sample: f0 uniform in
`f0_bins` (pitch shift), the onset frame uniform in [0, max_onset] (silence before it), a gain of +-`gain_db`
dB, pink background noise (energy ~ exponential(1) * noise_level / (1 + bin)) and, with probability 0.5, a
non-harmonic chirp (a line sweeping linearly between two random bins over the whole sample).

Why the structure matters: a frequency band of a harmonic tone is predictable from the other harmonics (they
share f0 and the formant), a time strip from the rest of the temporal envelope; both are class-defining,
while a small patch is largely inpaintable from its immediate neighbours (smoothing).  `harmonic_coupling:
false` is the off-knob: the partials sit at independently drawn bins (as many as the class's harmonic set
has at that f0), so no band says where the others are.

Every draw comes from the torch generator: the training stream is deterministic per generator; the eval
splits ("train" to fit probes, "test" to score them) are drawn once from `eval_seed`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from baselines.tasks.labeled import GridInput, LabeledBatch
from baselines.tasks.ranges import check_interval
from harness.components import TASKS
from harness.registry import ComponentConfig

LINE_WIDTH = 0.6  # std (bins) of one partial's Gaussian line
SMOOTH_SIGMA = 1.0  # std (bins, frames) of the Gaussian smoothing
EPS = 1e-3  # floor of the energy before the log


class SpectroConfig(ComponentConfig):
    name: Literal["synth_spectro"] = "synth_spectro"
    n_freq: int = Field(default=32, ge=16)
    n_frames: int = Field(default=64, ge=16)
    f0_bins: tuple[float, float] = (3.0, 5.0)  # fundamental, in frequency bins (pitch shift)
    am_period: int = Field(default=16, ge=2)  # frames per amplitude-modulation cycle
    max_onset: int = Field(default=16, ge=0)  # latest onset frame
    gain_db: float = Field(default=6.0, ge=0.0)
    noise_level: float = Field(default=0.5, ge=0.0)  # pink background energy at bin 0
    chirp_level: float = Field(default=0.8, ge=0.0)  # energy of the non-harmonic chirp (when present)
    harmonic_coupling: bool = True  # False: partials at independently drawn bins (the off-knob)
    probe_train_size: int = Field(default=2000, ge=10)
    probe_test_size: int = Field(default=1000, ge=10)
    eval_seed: int = 2468

    def held_bytes(self) -> dict[str, int]:
        """The eval splits: float32 spectrograms (and the smoothing's padded copy while they are drawn)."""
        per_example = 2 * 4 * self.n_freq * self.n_frames
        return {"probe_train_size": self.probe_train_size * per_example, "probe_test_size": self.probe_test_size * per_example}

    def dry_config(self, batch_size: int = 16) -> SpectroConfig:
        return self.model_copy(update={"probe_train_size": min(self.probe_train_size, 32), "probe_test_size": min(self.probe_test_size, 32)})

    @model_validator(mode="after")
    def _check(self) -> SpectroConfig:
        check_interval("f0_bins", self.f0_bins, 0.5, self.n_freq / 2)
        if self.max_onset >= self.n_frames:
            raise ValueError(f"max_onset={self.max_onset} leaves no sound in {self.n_frames} frames")
        return self


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = math.ceil(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()  # [2r + 1]


class SpectroTask:
    channels = 1
    n_classes = 8

    def __init__(self, cfg: SpectroConfig, seed: int) -> None:
        self.cfg = cfg
        self.seed = seed  # unused: training data come from the generator, eval data from eval_seed
        self.input_spec = GridInput(1, (cfg.n_freq, cfg.n_frames), ("freq", "time"))
        self.kernel = _gaussian_kernel(SMOOTH_SIGMA)
        gen = torch.Generator().manual_seed(cfg.eval_seed)
        raw_fit, raw_test = self.log_energy(cfg.probe_train_size, gen), self.log_energy(cfg.probe_test_size, gen)
        self.mean, self.std = raw_fit.inputs.mean().item(), raw_fit.inputs.std().item()
        self._fit, self._test = self._standardized(raw_fit), self._standardized(raw_test)

    def log_energy(self, n: int, generator: torch.Generator) -> LabeledBatch:
        """n samples before standardization: smoothed log energy [n, 1, F, T], labels [n] in 0..7."""
        cfg, Fq, T = self.cfg, self.cfg.n_freq, self.cfg.n_frames
        labels = torch.randint(0, 8, (n,), generator=generator)  # [n]
        odd, high, am = labels % 2, (labels // 2) % 2, labels // 4  # the 3 factors

        def u(*shape: int) -> torch.Tensor:
            return torch.rand(*shape, generator=generator)

        f0 = cfg.f0_bins[0] + (cfg.f0_bins[1] - cfg.f0_bins[0]) * u(n)  # [n]
        h = torch.arange(1, 2 * Fq)  # harmonic numbers [H]
        step = 1 + odd[:, None]  # all: 1, 2, 3, ...; odd: 1, 3, 5, ...
        freqs = f0[:, None] * (1 + step * (h[None, :] - 1))  # [n, H]
        present = freqs < Fq - 1  # [n, H]
        if not cfg.harmonic_coupling:  # as many partials, at independent bins
            freqs = 1 + (Fq - 2) * u(n, len(h))
        centre = Fq * (0.25 + 0.4 * high.float())  # [n] formant centre
        amp = 0.2 + torch.exp(-((freqs - centre[:, None]) ** 2) / (2 * (Fq / 6) ** 2))  # [n, H]
        bins = torch.arange(Fq, dtype=torch.float32)
        lines = torch.exp(-((bins[None, None, :] - freqs[..., None]) ** 2) / (2 * LINE_WIDTH**2))  # [n, H, F]
        spectrum = (lines * (amp * present)[..., None]).sum(dim=1)  # [n, F]

        t = torch.arange(T, dtype=torch.float32)
        onset = torch.floor((cfg.max_onset + 1) * u(n))  # [n]
        phase = 2 * math.pi * u(n)
        modulation = 1 - 0.9 * 0.5 * (1 + torch.cos(2 * math.pi * t[None, :] / cfg.am_period + phase[:, None]))  # [n, T]
        envelope = torch.where(am[:, None].bool(), modulation, torch.ones(n, T)) * (t[None, :] >= onset[:, None])
        gain = 10 ** (cfg.gain_db * (2 * u(n) - 1) / 10)  # [n] energy factor
        energy = gain[:, None, None] * spectrum[:, :, None] * envelope[:, None, :]  # [n, F, T]

        start, end = 1 + (Fq - 2) * u(n), 1 + (Fq - 2) * u(n)  # chirp from bin `start` to `end`
        path = start[:, None] + (end - start)[:, None] * t[None, :] / (T - 1)  # [n, T]
        chirp = torch.exp(-((bins[None, :, None] - path[:, None, :]) ** 2) / (2 * LINE_WIDTH**2))  # [n, F, T]
        energy = energy + cfg.chirp_level * (u(n) < 0.5).float()[:, None, None] * chirp
        pink = cfg.noise_level / (1 + bins)  # [F]
        noise = -torch.log(u(n, Fq, T).clamp_min(1e-12))  # exponential(1) per (bin, frame)
        energy = energy + pink[None, :, None] * noise
        return LabeledBatch(torch.log(self._smooth(energy) + EPS).unsqueeze(1), labels)

    def _smooth(self, energy: torch.Tensor) -> torch.Tensor:
        """Separable Gaussian smoothing of [n, F, T] along frequency and time (edges replicated)."""
        k, r = self.kernel, len(self.kernel) // 2
        x = energy.unsqueeze(1)  # [n, 1, F, T]
        x = F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))  # along frequency
        x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))  # along time
        return x.squeeze(1)  # [n, F, T]

    def _standardized(self, batch: LabeledBatch) -> LabeledBatch:
        return LabeledBatch(((batch.inputs - self.mean) / self.std).float(), batch.labels)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[LabeledBatch]:
        """Infinite stream of freshly drawn, standardized [batch_size, 1, F, T] spectrograms."""
        while True:
            yield self._standardized(self.log_energy(batch_size, generator))

    def eval_splits(self) -> dict[str, LabeledBatch]:
        return {"train": self._fit, "test": self._test}


@TASKS.register("synth_spectro", SpectroConfig)
def build_spectro(cfg: SpectroConfig, seed: int) -> SpectroTask:
    return SpectroTask(cfg, seed)
