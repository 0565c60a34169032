"""Synthetic fMRI-like region x time series for Brain-JEPA-style pre-training: `synth_fmri`, the fMRI test bed of
the signal_jepa suite; and the connectivity gradient of its regions (a diffusion map, Brain-JEPA's positioning).

A sample is one subject's scan: `n_regions` regions x `n_frames` frames (inputs [B, R, T], `SignalInput`).
`n_networks` latent network signals are AR(1) processes (coefficient `phi`, unit variance), mixed per subject
by M = I + off-diagonal couplings uniform in +-`nuisance_coupling`, except networks 0 (A) and 1 (B):
M[B, A] = +-`coupling`, its sign the subject's label (rows of M normalized).  Region r belongs to network
net(r) (equal shares): x_r = loading_r * (M z)_net(r) + noise with signal-to-noise ratio `snr`, loadings
uniform in [0.7, 1.3] per region and jittered per subject.

The regions are listed in a random order (`shuffle_regions`, fixed by `layout_seed`; false is the off-knob:
sorted by network), so the region index says nothing about the network.  Each region has 3-D "anatomical"
coordinates: a share `anatomy_alignment` of them near their network's centroid, the others anywhere.

The gradient ("gradient" attribute of the input spec, [R, k]) is computed from data: the group-level
functional connectivity (mean over `gradient_subjects` scans drawn from `gradient_seed` of each scan's
correlation matrix), then `diffusion_map` (BrainSpace's recipe, as Brain-JEPA's gradients: each row kept at its
top 1 - `sparsity` entries, cosine affinity of the rows, anisotropic diffusion with alpha 0.5, the leading
non-trivial eigenvectors scaled by lambda / (1 - lambda)).  Eval splits: "train" and "test" are scans of
independent subjects drawn from `eval_seed`; the training stream draws fresh subjects from the run's generator.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from baselines.tasks.labeled import LabeledBatch
from baselines.tasks.signals import SignalInput
from harness.components import TASKS
from harness.registry import ComponentConfig


def diffusion_map(fc: np.ndarray, n_components: int, alpha: float = 0.5, sparsity: float = 0.9) -> np.ndarray:
    """Connectivity gradients of a functional-connectivity matrix fc [R, R] -> [R, n_components] (module
    docstring).  Eigenvectors by scipy.linalg.eigh of the symmetric conjugate of the diffusion operator; each
    component's sign fixed so that its largest-magnitude entry is positive."""
    import scipy.linalg  # where a task is built, not when the orchestrator imports the plugins
    from scipy.spatial.distance import cdist

    x = np.array(fc, dtype=np.float64)
    keep = np.quantile(x, sparsity, axis=1, keepdims=True)  # [R, 1] row thresholds
    x = np.where(x >= keep, x, 0.0)
    affinity = np.clip(1.0 - cdist(x, x, metric="cosine"), 0.0, None)  # [R, R] cosine similarity of the rows
    d = affinity.sum(axis=1)
    kernel = affinity / np.outer(d**alpha, d**alpha)  # anisotropic normalization (alpha 0.5: Fokker-Planck)
    d2 = kernel.sum(axis=1)
    sym = kernel / np.sqrt(np.outer(d2, d2))  # similar to the Markov matrix kernel / d2 (same eigenvalues)
    lam, vec = scipy.linalg.eigh(sym)  # ascending
    lam, vec = lam[::-1], vec[:, ::-1]
    if lam[1] > 1 - 1e-9:  # a second eigenvalue 1: the graph falls apart, lambda / (1 - lambda) is infinite
        raise ValueError(f"the affinity graph of the {len(x)} regions is disconnected at sparsity {sparsity}: keep more entries")
    psi = vec / np.sqrt(d2)[:, None]  # right eigenvectors of the Markov matrix
    psi = psi / psi[:, :1]  # the trivial one becomes 1
    lam, psi = lam[1:n_components + 1], psi[:, 1:n_components + 1]
    grad = psi * (lam / (1.0 - lam))[None, :]  # BrainSpace's automatic diffusion time
    sign = np.sign(grad[np.abs(grad).argmax(axis=0), np.arange(grad.shape[1])])
    return grad * sign[None, :]


def correlation(x: torch.Tensor) -> torch.Tensor:
    """x [B, R, T] -> per-scan correlation matrices [B, R, R]."""
    z = x - x.mean(dim=2, keepdim=True)
    z = z / z.norm(dim=2, keepdim=True).clamp_min(1e-8)
    return z @ z.transpose(1, 2)


class FMRIConfig(ComponentConfig):
    name: Literal["synth_fmri"] = "synth_fmri"
    n_regions: int = Field(default=24, ge=4)
    n_networks: int = Field(default=4, ge=2)
    n_frames: int = Field(default=48, ge=8)
    phi: float = Field(default=0.9, ge=0.0, lt=1.0)  # AR(1) coefficient of the network signals
    coupling: float = Field(default=0.6, ge=0.0)  # |M[B, A]|: its sign is the label
    nuisance_coupling: float = Field(default=0.3, ge=0.0)  # other couplings uniform in +- this
    snr: float = Field(default=0.5, gt=0.0)  # signal / noise variance of a region
    shuffle_regions: bool = True  # False: regions sorted by network (the off-knob)
    anatomy_alignment: float = Field(default=0.5, ge=0.0, le=1.0)  # share of regions placed near their network
    gradient_components: int = Field(default=6, ge=1)
    gradient_subjects: int = Field(default=200, ge=2)
    gradient_sparsity: float = Field(default=0.5, ge=0.0, lt=1.0)  # 0.75 (6 of 24 kept: one network) disconnects
    probe_train_size: int = Field(default=600, ge=10)
    probe_test_size: int = Field(default=400, ge=10)
    layout_seed: int = 97
    gradient_seed: int = 1357
    eval_seed: int = 2468

    def held_bytes(self) -> dict[str, int]:
        per_scan = 3 * 4 * self.n_regions * self.n_frames
        return {"probe_train_size": self.probe_train_size * per_scan, "probe_test_size": self.probe_test_size * per_scan}

    def dry_config(self, batch_size: int = 16) -> FMRIConfig:
        return self.model_copy(update={"probe_train_size": min(self.probe_train_size, 32), "probe_test_size": min(self.probe_test_size, 32),
                                       "gradient_subjects": min(self.gradient_subjects, 16)})

    @model_validator(mode="after")
    def _check(self) -> FMRIConfig:
        if self.n_regions % self.n_networks:
            raise ValueError(f"n_networks={self.n_networks} must divide n_regions={self.n_regions}")
        if self.gradient_components >= self.n_regions:
            raise ValueError(f"gradient_components={self.gradient_components} must be below n_regions={self.n_regions}")
        return self


class FMRITask:
    n_classes = 2  # the sign of the A-B coupling

    def __init__(self, cfg: FMRIConfig, seed: int) -> None:
        self.cfg = cfg
        self.seed = seed  # unused: training data come from the generator, eval data from eval_seed
        R, K = cfg.n_regions, cfg.n_networks
        gen = torch.Generator().manual_seed(cfg.layout_seed)
        order = torch.randperm(R, generator=gen) if cfg.shuffle_regions else torch.arange(R)
        self.network = (torch.arange(R) * K // R)[order]  # [R]: the network of each listed region
        self.loading = 0.7 + 0.6 * torch.rand(R, generator=gen)  # [R]
        centroid = torch.randn(K, 3, generator=gen)  # [K, 3]
        near = torch.rand(R, generator=gen) < cfg.anatomy_alignment
        anywhere = 1.5 * torch.randn(R, 3, generator=gen)
        self.coords = torch.where(near[:, None], centroid[self.network] + 0.3 * torch.randn(R, 3, generator=gen), anywhere)
        fc = correlation(self.scans(cfg.gradient_subjects, torch.Generator().manual_seed(cfg.gradient_seed)).inputs).mean(0)
        self.fc = fc  # [R, R] the group-level functional connectivity
        grad = diffusion_map(fc.numpy(), cfg.gradient_components, 0.5, cfg.gradient_sparsity)  # [R, k]
        self.gradient = torch.from_numpy(grad).float()
        self.input_spec = SignalInput(R, cfg.n_frames, {"positions": self.coords, "gradient": self.gradient})
        gen = torch.Generator().manual_seed(cfg.eval_seed)
        self._fit, self._test = self.scans(cfg.probe_train_size, gen), self.scans(cfg.probe_test_size, gen)

    def scans(self, n: int, gen: torch.Generator) -> LabeledBatch:
        """n subjects' scans [n, R, T] (each region standardized over time) and labels [n] (1: positive A-B coupling)."""
        cfg, K, T = self.cfg, self.cfg.n_networks, self.cfg.n_frames
        z = torch.empty(n, K, T)
        z[..., 0] = torch.randn(n, K, generator=gen)
        innovation = math.sqrt(1 - cfg.phi**2) * torch.randn(n, K, T, generator=gen)
        for t in range(1, T):  # AR(1), unit stationary variance
            z[..., t] = cfg.phi * z[..., t - 1] + innovation[..., t]
        labels = torch.randint(0, 2, (n,), generator=gen)
        mix = torch.eye(K) + cfg.nuisance_coupling * (2 * torch.rand(n, K, K, generator=gen) - 1) * (1 - torch.eye(K))
        mix[:, 1, 0] = cfg.coupling * (2 * labels.float() - 1)  # network B reads network A with the label's sign
        mix[:, 0, 1] = 0.0  # A does not read B: the sign of corr(A, B) is the label's
        mix = mix / mix.norm(dim=2, keepdim=True)
        nets = mix @ z  # [n, K, T]
        loading = self.loading * (1 + 0.1 * torch.randn(n, cfg.n_regions, generator=gen))  # [n, R]
        signal = loading[..., None] * nets[:, self.network]  # [n, R, T]
        noise = torch.randn(signal.shape, generator=gen) * loading.pow(2).mean().sqrt() / math.sqrt(cfg.snr)
        x = signal + noise
        x = (x - x.mean(dim=2, keepdim=True)) / x.std(dim=2, keepdim=True).clamp_min(1e-6)
        return LabeledBatch(x.float(), labels)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[LabeledBatch]:
        while True:
            yield self.scans(batch_size, generator)

    def eval_splits(self) -> dict[str, LabeledBatch]:
        return {"train": self._fit, "test": self._test}


@TASKS.register("synth_fmri", FMRIConfig)
def build_fmri(cfg: FMRIConfig, seed: int) -> FMRITask:
    return FMRITask(cfg, seed)
