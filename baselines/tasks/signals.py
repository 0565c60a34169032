"""Synthetic multichannel EEG-like trials for S-JEPA-style pre-training: `synth_eeg`, the EEG test bed of the
signal_jepa suite (the fMRI-like one is baselines/tasks/signals_fmri.py).

A trial is `n_electrodes` channels x `sfreq * seconds` samples (inputs [B, C, T], `SignalInput`).  Electrodes
sit on the upper half of a unit-sphere head (a Fibonacci lattice, z >= 0.1); sources sit under the scalp at
radius 0.85.  Each source's time course is mixed into the channels by a lead field

    L[c, s] = exp(-|e_c - p_s|^2 / (2 sigma^2)) / max_c (the same),   x = gain * (L @ sources) + sensor noise

(volume conduction: every source reaches every electrode near it).  `volume_conduction: false` is the
off-knob: L[c, s] = 1 for the electrode nearest source s, else 0 (identity-like mixing, the sigma -> 0 limit).
Sources of one trial:
    ssvep      an occipital source: sin(2 pi f t + phi) + 0.5 sin(4 pi f t + phi'), f the trial's class among
               `ssvep_hz` (SSVEP trials only)
    motor      two mu-rhythm sources over the left / right motor cortex: 8-12 Hz band-limited noise; on an MI
               trial the one contralateral to the imagined hand drops to `erd` of its amplitude
    alpha      a parietal 8-12 Hz nuisance source of random amplitude
    background `n_background` 1/f (pink) sources at random places per subject
Subjects differ by a per-channel gain (log-normal, `gain_jitter`), jittered source positions and amplitudes.
Training trials mix both paradigms (half SSVEP, half MI; their labels ride along unused); the eval splits hold
the configured `paradigm`: "train" (fit the probe) from the pre-training subjects, "test" (score it) from the
`n_heldout` held-out subjects, none of whose trials is ever in the training stream.  Inputs are standardized
by one mean and std of the fit split.  Every draw comes from torch generators: the subjects from
`subject_seed`, the eval splits from `eval_seed`, the training stream from the run's generator.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

import torch
from pydantic import Field, model_validator

from baselines.tasks.labeled import LabeledBatch
from harness.components import TASKS
from harness.registry import ComponentConfig

SOURCE_RADIUS = 0.85  # sources sit this deep under the unit scalp
MU_BAND = (8.0, 12.0)  # Hz: the mu / alpha band
POSITIONS = {"ssvep": (0.0, -0.9, 0.35), "left_motor": (-0.7, 0.0, 0.7), "right_motor": (0.7, 0.0, 0.7),
             "alpha": (0.0, -0.5, 0.85)}  # before normalization to SOURCE_RADIUS


@dataclass(frozen=True, eq=False)
class SignalInput:
    """Inputs [B, channels, length]: multichannel time series; `attrs` per channel ([channels, k] each), e.g.
    "positions" (3-D electrode or region coordinates) and "gradient" (an fMRI region's connectivity gradient)."""

    channels: int
    length: int
    attrs: Mapping[str, torch.Tensor] = field(default_factory=dict)


def fibonacci_hemisphere(n: int, z_min: float = 0.1) -> torch.Tensor:
    """n points [n, 3] on the unit sphere with z in [z_min, 1], spread evenly (a golden-angle spiral)."""
    i = torch.arange(n, dtype=torch.float64)
    z = 1 - (1 - z_min) * (i + 0.5) / n
    r, theta = torch.sqrt(1 - z**2), math.pi * (3 - math.sqrt(5)) * i
    return torch.stack([r * torch.cos(theta), r * torch.sin(theta), z], dim=1).float()  # [n, 3]


def lead_field(electrodes: torch.Tensor, sources: torch.Tensor, sigma: float, volume_conduction: bool) -> torch.Tensor:
    """electrodes [C, 3], sources [S, 3] -> L [C, S] (module docstring): Gaussian decay with distance, each
    source's column scaled to a maximum of 1; without volume conduction a one-hot of the nearest electrode."""
    d2 = torch.cdist(electrodes.double(), sources.double()) ** 2  # [C, S]
    if not volume_conduction:
        return torch.zeros_like(d2).scatter_(0, d2.argmin(dim=0, keepdim=True), 1.0).float()
    L = torch.exp(-d2 / (2 * sigma**2))  # [C, S]
    return (L / L.amax(dim=0, keepdim=True)).float()


def band_noise(n: int, T: int, sfreq: float, band: tuple[float, float], gen: torch.Generator) -> torch.Tensor:
    """n unit-variance band-limited noises [n, T]: white noise with its spectrum outside `band` zeroed."""
    spec = torch.fft.rfft(torch.randn(n, T, generator=gen), dim=1)  # [n, T/2+1]
    f = torch.fft.rfftfreq(T, 1 / sfreq)
    x = torch.fft.irfft(spec * ((f >= band[0]) & (f <= band[1])), n=T, dim=1)  # [n, T]
    return x / x.std(dim=1, keepdim=True).clamp_min(1e-8)


def pink_noise(n: int, T: int, exponent: float, gen: torch.Generator) -> torch.Tensor:
    """n unit-variance 1/f^exponent (power) noises [n, T]."""
    spec = torch.fft.rfft(torch.randn(n, T, generator=gen), dim=1)  # [n, T/2+1]
    f = torch.arange(spec.shape[1], dtype=torch.float32).clamp_min(1.0)
    x = torch.fft.irfft(spec * f ** (-exponent / 2), n=T, dim=1)  # [n, T]
    return x / x.std(dim=1, keepdim=True).clamp_min(1e-8)


class EEGConfig(ComponentConfig):
    name: Literal["synth_eeg"] = "synth_eeg"
    paradigm: Literal["ssvep", "mi"] = "ssvep"  # the eval splits' task (the training stream mixes both)
    n_electrodes: int = Field(default=16, ge=4)
    sfreq: float = Field(default=64.0, gt=0.0)
    seconds: float = Field(default=4.0, gt=0.0)
    volume_conduction: bool = True  # False: identity-like mixing, each source on its nearest electrode
    sigma: float = Field(default=0.35, gt=0.0)  # lead-field width on the unit head
    ssvep_hz: tuple[float, ...] = (8.0, 10.0, 12.0, 15.0)  # one class per frequency
    erd: float = Field(default=0.3, ge=0.0, le=1.0)  # mu amplitude left contralateral to the imagined hand
    n_background: int = Field(default=8, ge=0)
    background_exponent: float = Field(default=1.0, ge=0.0)  # 1/f^exponent power
    background_level: float = Field(default=1.0, ge=0.0)
    sensor_noise: float = Field(default=0.2, ge=0.0)
    gain_jitter: float = Field(default=0.2, ge=0.0)  # std of the log per-channel gain of a subject
    position_jitter: float = Field(default=0.05, ge=0.0)  # std of a subject's source displacement
    n_subjects: int = Field(default=20, ge=2)
    n_heldout: int = Field(default=4, ge=1)  # the last n_heldout subjects: the probe's test split only
    probe_train_size: int = Field(default=800, ge=10)
    probe_test_size: int = Field(default=400, ge=10)
    subject_seed: int = 1357
    eval_seed: int = 2468

    @property
    def n_samples(self) -> int:
        return round(self.sfreq * self.seconds)

    def held_bytes(self) -> dict[str, int]:
        per_trial = 3 * 4 * self.n_electrodes * self.n_samples  # float32 trial + its sources while drawn
        return {"probe_train_size": self.probe_train_size * per_trial, "probe_test_size": self.probe_test_size * per_trial}

    def dry_config(self, batch_size: int = 16) -> EEGConfig:
        return self.model_copy(update={"probe_train_size": min(self.probe_train_size, 32), "probe_test_size": min(self.probe_test_size, 32)})

    @model_validator(mode="after")
    def _check(self) -> EEGConfig:
        if self.n_heldout >= self.n_subjects:
            raise ValueError(f"n_heldout={self.n_heldout} leaves no pre-training subject of {self.n_subjects}")
        if max(self.ssvep_hz) * 2 >= self.sfreq / 2 or len(self.ssvep_hz) < 2:
            raise ValueError(f"ssvep_hz={self.ssvep_hz}: need >= 2 frequencies whose 2nd harmonic is below {self.sfreq / 2} Hz")
        return self


@dataclass
class Subjects:
    """gain [S, C]; lead [S, C, n_sources] (ssvep, left motor, right motor, alpha, then background); amp [S, 4]."""

    gain: torch.Tensor
    lead: torch.Tensor
    amp: torch.Tensor


def draw_subjects(cfg: EEGConfig, electrodes: torch.Tensor) -> Subjects:
    gen = torch.Generator().manual_seed(cfg.subject_seed)
    S, C = cfg.n_subjects, cfg.n_electrodes
    base = torch.tensor(list(POSITIONS.values()))  # [4, 3]
    gains, leads = [], []
    for _ in range(S):
        fixed = base + cfg.position_jitter * torch.randn(base.shape, generator=gen)  # [4, 3]
        background = torch.randn(cfg.n_background, 3, generator=gen)
        background[:, 2] = background[:, 2].abs()  # the upper half of the head
        where = torch.cat([fixed, background])  # [n_sources, 3]
        where = SOURCE_RADIUS * where / where.norm(dim=1, keepdim=True)
        leads.append(lead_field(electrodes, where, cfg.sigma, cfg.volume_conduction))
        gains.append(torch.exp(cfg.gain_jitter * torch.randn(C, generator=gen)))
    amp = 1 + 0.25 * torch.randn(S, 4, generator=gen).clamp(-2, 2)  # [S, 4]: ssvep, motor, motor, alpha
    return Subjects(torch.stack(gains), torch.stack(leads), amp)


class EEGTask:
    def __init__(self, cfg: EEGConfig, seed: int) -> None:
        self.cfg = cfg
        self.seed = seed  # unused: training data come from the generator, eval data from eval_seed
        self.electrodes = fibonacci_hemisphere(cfg.n_electrodes)  # [C, 3]
        self.input_spec = SignalInput(cfg.n_electrodes, cfg.n_samples, {"positions": self.electrodes})
        self.n_classes = len(cfg.ssvep_hz) if cfg.paradigm == "ssvep" else 2
        self.subjects = draw_subjects(cfg, self.electrodes)
        n_train_subjects = cfg.n_subjects - cfg.n_heldout
        gen = torch.Generator().manual_seed(cfg.eval_seed)
        fit = self.trials(cfg.paradigm, torch.randint(0, n_train_subjects, (cfg.probe_train_size,), generator=gen), gen)
        test = self.trials(cfg.paradigm, torch.randint(n_train_subjects, cfg.n_subjects, (cfg.probe_test_size,), generator=gen), gen)
        self.mean, self.std = fit.inputs.mean().item(), fit.inputs.std().item()
        self._fit, self._test = self._standardized(fit), self._standardized(test)

    def trials(self, paradigm: str, subject: torch.Tensor, gen: torch.Generator) -> LabeledBatch:
        """Trials of `paradigm` for the subjects `subject` [n] before standardization: inputs [n, C, T], labels [n]."""
        cfg, n, T = self.cfg, len(subject), self.cfg.n_samples
        t = torch.arange(T, dtype=torch.float32) / cfg.sfreq  # [T] seconds
        amp = self.subjects.amp[subject] * (1 + 0.2 * torch.randn(n, 4, generator=gen))  # [n, 4] trial jitter
        if paradigm == "ssvep":
            labels = torch.randint(0, len(cfg.ssvep_hz), (n,), generator=gen)
            f = torch.tensor(cfg.ssvep_hz)[labels][:, None]  # [n, 1]
            phase = 2 * math.pi * torch.rand(n, 2, generator=gen)
            ssvep = torch.sin(2 * math.pi * f * t + phase[:, :1]) + 0.5 * torch.sin(4 * math.pi * f * t + phase[:, 1:])
            motor_scale = torch.ones(n, 2)
        else:  # MI: 0 = left hand (the right motor source desynchronizes), 1 = right hand (the left one)
            labels = torch.randint(0, 2, (n,), generator=gen)
            ssvep = torch.zeros(n, T)
            motor_scale = torch.ones(n, 2).scatter_(1, (1 - labels)[:, None], cfg.erd)  # [n, 2]: left, right
        mu = band_noise(3 * n, T, cfg.sfreq, MU_BAND, gen).view(n, 3, T)  # left motor, right motor, alpha
        fixed = torch.cat([ssvep[:, None], mu], dim=1) * amp[..., None]  # [n, 4, T]
        fixed[:, 1:3] *= motor_scale[..., None]
        fixed[:, 3] *= torch.rand(n, 1, generator=gen)  # the alpha nuisance: a random amplitude per trial
        background = cfg.background_level * pink_noise(n * cfg.n_background, T, cfg.background_exponent, gen)
        sources = torch.cat([fixed, background.view(n, cfg.n_background, T)], dim=1)  # [n, n_sources, T]
        x = torch.einsum("ncs,nst->nct", self.subjects.lead[subject], sources)  # [n, C, T]
        x = self.subjects.gain[subject][..., None] * x + cfg.sensor_noise * torch.randn(x.shape, generator=gen)
        return LabeledBatch(x, labels)

    def _standardized(self, batch: LabeledBatch) -> LabeledBatch:
        return LabeledBatch(((batch.inputs - self.mean) / self.std).float(), batch.labels)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[LabeledBatch]:
        """Endless trials of the pre-training subjects, each batch half SSVEP and half MI (labels unused)."""
        n_train_subjects = self.cfg.n_subjects - self.cfg.n_heldout
        half = batch_size // 2
        while True:
            subject = torch.randint(0, n_train_subjects, (batch_size,), generator=generator)
            a = self.trials("ssvep", subject[:half], generator)
            b = self.trials("mi", subject[half:], generator)
            yield self._standardized(LabeledBatch(torch.cat([a.inputs, b.inputs]), torch.cat([a.labels, b.labels])))

    def eval_splits(self) -> dict[str, LabeledBatch]:
        return {"train": self._fit, "test": self._test}


@TASKS.register("synth_eeg", EEGConfig)
def build_eeg(cfg: EEGConfig, seed: int) -> EEGTask:
    return EEGTask(cfg, seed)
