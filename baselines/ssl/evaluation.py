"""The evaluation shared by every SSL method: probe a frozen representation on the task's eval splits.

The fit split is eval split "train", the score split "test" (both labelled, fixed for every seed).  Features
are the representation's pooled tokens (`pooling`); the attentive probe reads the tokens themselves.
    probe/<probe>[_<labels>]     each configured probe's score (accuracy, or R^2 for a regression task); with
                                 `draws`, the mean over the label subsets drawn
    probe_val/<probe>[_<labels>] its score on the validation split carved from the fit split (probes that
                                 carve one: linear): what a suite selects configurations on
    probe_chosen/<probe>_<param> what a probe chose on its validation split (e.g. linear l2)
    items/probe                  the score split's size, for a classification task: every probe/ accuracy is a
                                 proportion of these independent test items (harness.report.stats)
    collapse/std_mean            per-dimension std of the l2-normalized score-split features, mean over
                                 dimensions (healthy ~ 1/sqrt(D), complete collapse -> 0)
    collapse/std_min             ... its minimum over dimensions (a dead dimension -> 0)
    collapse/eff_rank            RankMe effective rank of the score-split features, in [1, D]
    collapse/eff_rank_centered   the same after subtracting the mean feature (spread, not the shared offset)
    collapse/log2_rank_centered  its log2: the spectral entropy in bits (1 bit less = half the effective rank)
    collapse/content_share       the share of the score-split tokens' variance not explained by position
                                 (baselines/ssl/collapse.py; ~0: the tokens only say where they are; for
                                 layouts shared by every sample)
Probes marked final_only run at the last evaluation only.  The probes themselves are baselines/ssl/probes.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from pydantic import Field

from baselines.ssl.collapse import collapse_stats, content_share
from baselines.ssl.probes import PROBES, Features, KnnProbeConfig, LinearProbeConfig, split_index
from baselines.ssl.registered import Registered
from baselines.ssl.representation import Pooling, Representation, pool
from baselines.tasks.labeled import LabeledBatch, LabeledTask
from harness.registry import ComponentConfig


class ProbedConfig(ComponentConfig):
    """Base of the SSL method configs: how their representation is probed."""

    eval_batch_size: int = Field(default=512, ge=1)
    pooling: Pooling = "mean"
    probes: list[Registered(PROBES)] = Field(default_factory=lambda: [LinearProbeConfig(), KnnProbeConfig()])


def probe_name(cfg: ComponentConfig) -> str:
    return cfg.name if cfg.labels is None else f"{cfg.name}_{cfg.labels}"


COLLAPSE_METRICS = ("std_mean", "std_min", "eff_rank", "eff_rank_centered", "log2_rank_centered", "content_share")


def probe_metric_names(cfg: ProbedConfig, task: LabeledTask | None = None) -> list[str]:
    """The names probe_metrics returns for `cfg` at the final evaluation (what an SSL method declares); with
    the task, `items/probe` for a classification task."""
    names = [f"collapse/{k}" for k in COLLAPSE_METRICS]
    for p in cfg.probes:
        names += [f"probe/{probe_name(p)}", *(f"probe_chosen/{probe_name(p)}_{k}" for k in p.chooses)]
        names += [f"probe_val/{probe_name(p)}"] if p.validates else []
    return names + (["items/probe"] if task is not None and getattr(task, "n_classes", 0) > 0 else [])


def run_seed() -> int:
    """The seed of the run being evaluated: harness.train.seed_everything seeds torch's default generator with
    it at the start of every run, and torch.initial_seed() returns that seed for the rest of the run."""
    return torch.initial_seed()


def _probe(p: ComponentConfig, on: Features, score: Features, n_classes: int) -> tuple[float, dict[str, float], float | None]:
    """The probe fit on `on` (each label subset it draws, averaged) and scored on `score`."""
    if p.labels is None or p.labels >= len(on.y):
        r = PROBES.get(p.name).build(p)(on, score, n_classes)
        return r.score, r.chosen, r.validation
    results = [PROBES.get(p.name).build(p)(on.subset(split_index(on.y, p.labels, seed, n_classes > 0)[0]), score, n_classes)
               for seed in p.draw_seeds(run_seed())]
    vals = [r.validation for r in results if r.validation is not None]
    chosen = {k: float(np.median([r.chosen[k] for r in results])) for k in results[0].chosen}
    return float(np.mean([r.score for r in results])), chosen, float(np.mean(vals)) if vals else None


def probe_metrics(
    rep: Representation, task: LabeledTask, splits: Mapping[str, LabeledBatch], cfg: ProbedConfig, final: bool
) -> dict[str, float]:
    """The metrics of the module docstring for a frozen representation; `splits` = task.eval_splits()."""
    fit, score_split = splits["train"], splits["test"]
    tokens = {"fit": Features(rep.split_tokens(fit), fit.labels), "score": Features(rep.split_tokens(score_split), score_split.labels)}
    pooled = {k: Features(pool(f.x, rep.pooling), f.y) for k, f in tokens.items()}  # [S, D']
    metrics: dict[str, float] = {}
    for p in cfg.probes:
        if p.final_only and not final:
            continue
        data = tokens if p.reads_tokens else pooled
        score, chosen, val = _probe(p, data["fit"], data["score"], task.n_classes)
        metrics[f"probe/{probe_name(p)}"] = score
        metrics.update({f"probe_chosen/{probe_name(p)}_{k}": v for k, v in chosen.items()})
        if val is not None:
            metrics[f"probe_val/{probe_name(p)}"] = val
    if task.n_classes > 0:
        metrics["items/probe"] = float(len(score_split.labels))
    stats = collapse_stats(pooled["score"].x)
    metrics.update({f"collapse/{k}": float(v) for k, v in stats.items()})
    metrics["collapse/log2_rank_centered"] = math.log2(stats["eff_rank_centered"])
    metrics["collapse/content_share"] = content_share(tokens["score"].x)
    return metrics
