"""Few-shot episodes (Point-BERT / Point-JEPA protocol): `n_way`-way `k_shot`-shot classification on frozen
features, averaged over `episodes` episodes.

Per episode (numpy generator seeded by `seed`, so every encoder sees the same episodes): n_way classes drawn
among those with at least k_shot examples in the fit split and n_query in the score split; k_shot support
examples per class from the fit split, n_query query examples per class from the score split; a logistic
regression (baselines/ssl/classifiers.py linear_probe, L2 `l2`, features standardized on the support set) fit
on the support set and scored on the queries.  probe/fewshot = the mean query accuracy over episodes
(Point-JEPA: a linear SVM per episode, 10 episodes; chance 1 / n_way).  Classification tasks only.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field

from baselines.ssl.classifiers import linear_probe
from baselines.ssl.probes import PROBES, Features, Probe, ProbeConfig, ProbeResult


class FewShotProbeConfig(ProbeConfig):
    name: Literal["fewshot"] = "fewshot"
    n_way: int = Field(default=5, ge=2)
    k_shot: int = Field(default=10, ge=1)
    n_query: int = Field(default=20, ge=1)
    episodes: int = Field(default=10, ge=1)
    l2: float = Field(default=1e-2, ge=0.0)
    seed: int = 0


def episode_index(y_fit: np.ndarray, y_score: np.ndarray, cfg: FewShotProbeConfig, rng: np.random.Generator):
    """(support index into the fit split, query index into the score split, their classes) of one episode."""
    n = int(max(y_fit.max(), y_score.max())) + 1
    fit_counts, score_counts = np.bincount(y_fit, minlength=n), np.bincount(y_score, minlength=n)  # [n] each
    able = np.flatnonzero((fit_counts >= cfg.k_shot) & (score_counts >= cfg.n_query))
    if len(able) < cfg.n_way:
        raise ValueError(f"fewshot: only {len(able)} classes have {cfg.k_shot} fit and {cfg.n_query} score examples; "
                         f"n_way={cfg.n_way}")
    classes = rng.choice(able, cfg.n_way, replace=False)
    support = np.concatenate([rng.choice(np.flatnonzero(y_fit == c), cfg.k_shot, replace=False) for c in classes])
    query = np.concatenate([rng.choice(np.flatnonzero(y_score == c), cfg.n_query, replace=False) for c in classes])
    return support, query, classes


@PROBES.register("fewshot", FewShotProbeConfig)
def build_fewshot(cfg: FewShotProbeConfig) -> Probe:
    def probe(fit: Features, score: Features, n_classes: int) -> ProbeResult:
        if n_classes < 2:
            raise ValueError("probe fewshot needs a classification task")
        rng = np.random.default_rng(cfg.seed)
        y_fit, y_score = fit.y.numpy(), score.y.numpy()
        accuracies = []
        for _ in range(cfg.episodes):
            support, query, classes = episode_index(y_fit, y_score, cfg, rng)
            relabel = torch.full((n_classes,), -1, dtype=torch.long)
            relabel[torch.as_tensor(classes)] = torch.arange(cfg.n_way)  # episode classes -> 0..n_way-1
            s, q = fit.subset(support), score.subset(query)
            accuracies.append(linear_probe(s.x, relabel[s.y], q.x, relabel[q.y], cfg.n_way, weight_decay=cfg.l2))
        return ProbeResult(float(np.mean(accuracies)))

    return probe
