"""Probes: frozen features (or tokens) of a fit split and a score split -> a score, registered in PROBES.

    probe(fit: Features, score: Features, n_classes) -> ProbeResult(score, chosen)

`score` is the accuracy on the score split for a classification task (n_classes >= 2), the R^2 for a
regression task (n_classes == 0); `chosen` holds hyper-parameters the probe picked on a validation split
carved from its fit split (logged as probe_chosen/<probe>_<name>), `validation` its score there (logged as
probe_val/<probe>: what a suite selects configurations on, never the score itself).  Every probe config has
    labels       fit on this many labelled examples of the fit split (a stratified subset drawn with
                 `label_seed`; None: all of it); the metric is then probe/<name>_<labels>
    label_seed   the subset's seed, or `run`: the run's own seed, so that each seed of a suite draws its own
                 labels and the interval over seeds includes the label draw's variance
    draws        with `labels`: the subset is drawn this many times (seeds label_seed, label_seed + 1, ...;
                 with `run`, from the run's seed), the probe fit on each, the scores averaged
    final_only   run only at the end of training (the expensive probes), not at every evaluation

    linear     logistic regression by L-BFGS (ridge regression for a regression task) on standardized
               features; with several `l2` values, the one scoring best on a validation split (`val_fraction`
               of the fit split, stratified) is refit on the whole fit split
    knn        cosine k-NN on features centered on the fit mean (majority vote / mean target)
    mlp        scikit-learn's MLPClassifier / MLPRegressor (one hidden layer; early stopping on 10% of the fit
               split where that holds 200 rows or more) on standardized features
    hgb        scikit-learn's HistGradientBoostingClassifier / Regressor (default early stopping)
    attentive  V-JEPA's attentive probe: a learned query cross-attends over the tokens (LayerNorm'd), a linear
               head on the pooled vector, AdamW on the fit split; reads tokens, not pooled features
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from baselines.ssl.classifiers import knn_accuracy, knn_r2, linear_probe, r2_score, ridge_r2
from harness.registry import ComponentConfig, Registry


@dataclass
class Features:
    """x: [S, D'] pooled features or [S, N, D] tokens; y: [S] labels (long) or regression targets (float)."""

    x: torch.Tensor
    y: torch.Tensor

    def subset(self, index: np.ndarray) -> Features:
        index = torch.as_tensor(index, dtype=torch.long)
        return Features(self.x[index], self.y[index])


@dataclass
class ProbeResult:
    score: float
    chosen: dict[str, float] = field(default_factory=dict)
    validation: float | None = None  # the score on the validation split carved from the fit split, if the probe has one


class ProbeConfig(ComponentConfig):
    """Base of every probe config (module docstring)."""

    reads_tokens: ClassVar[bool] = False  # True: the probe reads tokens [S, N, D], not pooled features
    chooses: ClassVar[tuple[str, ...]] = ()  # the keys of its ProbeResult.chosen
    validates: ClassVar[bool] = False  # True: its ProbeResult carries a validation score (probe_val/<name>)
    labels: int | None = Field(default=None, ge=2)
    label_seed: int | Literal["run"] = 0
    draws: int = Field(default=1, ge=1, le=100)
    final_only: bool = False

    @model_validator(mode="after")
    def _draws_need_labels(self) -> ProbeConfig:
        if self.draws > 1 and self.labels is None:
            raise ValueError("'draws' redraws a label subset: give 'labels' too")
        return self

    def draw_seeds(self, run_seed: int) -> list[int]:
        """The seeds of the label subsets this probe is fit on (module docstring)."""
        first = run_seed if self.label_seed == "run" else self.label_seed
        return [first + d for d in range(self.draws)]


Probe = Callable[[Features, Features, int], ProbeResult]
PROBES: Registry[Callable[[ComponentConfig], Probe]] = Registry("probe")


def split_index(y: torch.Tensor, size: float | int, seed: int, classification: bool) -> tuple[np.ndarray, np.ndarray]:
    """(kept, rest) indices: a random subset of `size` (a count, or a fraction) of y [S], stratified by class."""
    from sklearn.model_selection import train_test_split  # scikit-learn where a probe runs (baselines.WARM_IMPORTS)

    index = np.arange(len(y))
    stratify = y.numpy() if classification else None
    kept, rest = train_test_split(index, train_size=size, random_state=seed, stratify=stratify)
    return np.sort(kept), np.sort(rest)


# ----------------------------------------------------------------------------------------------
# linear


class LinearProbeConfig(ProbeConfig):
    name: Literal["linear"] = "linear"
    chooses: ClassVar[tuple[str, ...]] = ("l2",)
    validates: ClassVar[bool] = True
    l2: list[float] = Field(default_factory=lambda: [1e-4, 1e-3, 1e-2, 1e-1, 1.0], min_length=1)  # candidate penalties
    val_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)  # held out of the fit split to choose l2
    max_iter: int = Field(default=200, ge=1)  # L-BFGS iterations


def _linear_score(cfg: LinearProbeConfig, fit: Features, score: Features, n_classes: int, l2: float) -> float:
    if n_classes:
        return linear_probe(fit.x, fit.y, score.x, score.y, n_classes, weight_decay=l2, max_iter=cfg.max_iter)
    return ridge_r2(fit.x, fit.y, score.x, score.y, l2=l2)


def _carve_seed(cfg: ProbeConfig) -> int:
    """The seed of the validation carve: the fixed label seed (0 when labels are drawn per run)."""
    return cfg.label_seed if isinstance(cfg.label_seed, int) else 0


@PROBES.register("linear", LinearProbeConfig)
def build_linear(cfg: LinearProbeConfig) -> Probe:
    def probe(fit: Features, score: Features, n_classes: int) -> ProbeResult:
        if len(cfg.l2) == 1:
            train, val = split_index(fit.y, 1.0 - cfg.val_fraction, _carve_seed(cfg), n_classes > 0)
            on_val = _linear_score(cfg, fit.subset(train), fit.subset(val), n_classes, cfg.l2[0])
            return ProbeResult(_linear_score(cfg, fit, score, n_classes, cfg.l2[0]), {"l2": cfg.l2[0]}, on_val)
        train, val = split_index(fit.y, 1.0 - cfg.val_fraction, _carve_seed(cfg), n_classes > 0)
        on_val = [_linear_score(cfg, fit.subset(train), fit.subset(val), n_classes, l2) for l2 in cfg.l2]
        best = cfg.l2[int(np.argmax(on_val))]  # the first of equal scores
        return ProbeResult(_linear_score(cfg, fit, score, n_classes, best), {"l2": best}, max(on_val))

    return probe


# ----------------------------------------------------------------------------------------------
# k-NN


class KnnProbeConfig(ProbeConfig):
    name: Literal["knn"] = "knn"
    k: int = Field(default=20, ge=1)
    center: bool = True  # center on the fit mean before the cosine (pooled features share a large offset)


@PROBES.register("knn", KnnProbeConfig)
def build_knn(cfg: KnnProbeConfig) -> Probe:
    def probe(fit: Features, score: Features, n_classes: int) -> ProbeResult:
        if n_classes:
            return ProbeResult(knn_accuracy(fit.x, fit.y, score.x, score.y, k=cfg.k, center=cfg.center))
        return ProbeResult(knn_r2(fit.x, fit.y, score.x, score.y, k=cfg.k, center=cfg.center))

    return probe


# ----------------------------------------------------------------------------------------------
# scikit-learn probes: MLP and gradient boosting


def _sklearn_score(model, fit: Features, score: Features, n_classes: int) -> float:
    model.fit(fit.x.double().numpy(), fit.y.numpy())
    pred = model.predict(score.x.double().numpy())
    if n_classes:
        return float((pred == score.y.numpy()).mean())
    return r2_score(torch.as_tensor(pred, dtype=torch.float64), score.y.double())


class MlpProbeConfig(ProbeConfig):
    name: Literal["mlp"] = "mlp"
    hidden: int = Field(default=256, ge=1)
    l2: float = Field(default=1e-4, ge=0.0)  # scikit-learn's alpha
    max_iter: int = Field(default=300, ge=1)
    seed: int = 0
    final_only: bool = True
    early_stopping: bool | None = Field(
        default=None, description="stop on 10% of the fit rows; null: only where that is at least EARLY_STOP_MIN rows "
        "(on 26 rows of a 256-label draw it stopped at chance-level noise: tabular_jepa's raw baseline 0.68 vs 0.86 without)")


EARLY_STOP_MIN = 200  # validation rows below which the MLP probe's early stopping measures noise, not fit


@PROBES.register("mlp", MlpProbeConfig)
def build_mlp(cfg: MlpProbeConfig) -> Probe:
    def probe(fit: Features, score: Features, n_classes: int) -> ProbeResult:
        from sklearn.neural_network import MLPClassifier, MLPRegressor
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        kind = MLPClassifier if n_classes else MLPRegressor
        stop = cfg.early_stopping if cfg.early_stopping is not None else 0.1 * len(fit.y) >= EARLY_STOP_MIN
        mlp = kind(hidden_layer_sizes=(cfg.hidden,), alpha=cfg.l2, max_iter=cfg.max_iter, early_stopping=stop,
                   random_state=cfg.seed)
        return ProbeResult(_sklearn_score(make_pipeline(StandardScaler(), mlp), fit, score, n_classes))

    return probe


class HgbProbeConfig(ProbeConfig):
    name: Literal["hgb"] = "hgb"
    max_iter: int = Field(default=200, ge=1)  # boosting rounds (early stopping may stop sooner)
    seed: int = 0
    final_only: bool = True


@PROBES.register("hgb", HgbProbeConfig)
def build_hgb(cfg: HgbProbeConfig) -> Probe:
    def probe(fit: Features, score: Features, n_classes: int) -> ProbeResult:
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        kind = HistGradientBoostingClassifier if n_classes else HistGradientBoostingRegressor
        return ProbeResult(_sklearn_score(kind(max_iter=cfg.max_iter, random_state=cfg.seed), fit, score, n_classes))

    return probe


# ----------------------------------------------------------------------------------------------
# attentive probe (V-JEPA)


class AttentivePooler(nn.Module):
    """tokens [B, N, D] -> LayerNorm -> one learned query cross-attends over them -> linear head [B, n_out]."""

    def __init__(self, width: int, heads: int, n_out: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"attentive probe: {heads} heads must divide the token width {width}")
        self.norm = nn.LayerNorm(width)
        self.query = nn.Parameter(0.02 * torch.randn(1, 1, width))  # [1, 1, D]
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.head = nn.Linear(width, n_out)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.norm(tokens)  # [B, N, D]
        pooled, _ = self.attn(self.query.expand(len(x), -1, -1), x, x)  # [B, 1, D]
        return self.head(pooled[:, 0])  # [B, n_out]


class AttentiveProbeConfig(ProbeConfig):
    reads_tokens: ClassVar[bool] = True
    name: Literal["attentive"] = "attentive"
    heads: int = Field(default=4, ge=1)
    steps: int = Field(default=300, ge=1)
    batch_size: int = Field(default=256, ge=1)
    lr: float = Field(default=3e-3, gt=0.0)  # measured on a toy task: 1e-3 needs 600 steps where 3e-3 needs 200
    weight_decay: float = Field(default=0.01, ge=0.0)
    seed: int = 0
    final_only: bool = True


@PROBES.register("attentive", AttentiveProbeConfig)
def build_attentive(cfg: AttentiveProbeConfig) -> Probe:
    def probe(fit: Features, score: Features, n_classes: int) -> ProbeResult:
        x = fit.x.float()  # [S, N, D]
        y = fit.y if n_classes else ((fit.y - fit.y.mean()) / fit.y.std().clamp_min(1e-12)).float()  # standardized
        with torch.random.fork_rng(devices=[]):  # the training run's global RNG stream is left untouched
            torch.manual_seed(cfg.seed)
            head = AttentivePooler(x.shape[-1], cfg.heads, n_classes or 1)
            opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            for _ in range(cfg.steps):
                idx = torch.randint(0, len(x), (min(cfg.batch_size, len(x)),))
                out = head(x[idx])  # [b, n_out]
                loss = F.cross_entropy(out, y[idx]) if n_classes else F.mse_loss(out[:, 0], y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        with torch.no_grad():
            out = head(score.x.float())  # [S, n_out]
        if n_classes:
            return ProbeResult((out.argmax(dim=1) == score.y).double().mean().item())
        pred = out[:, 0].double() * fit.y.double().std() + fit.y.double().mean()
        return ProbeResult(r2_score(pred, score.y.double()))

    return probe
