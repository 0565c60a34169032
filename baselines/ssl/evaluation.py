"""The evaluation shared by every SSL method: probe a frozen representation on the task's eval splits.

The fit split is eval split "train", the score split "test" (both labelled, fixed for every seed).  Features
are the representation's pooled tokens (`pooling`); the attentive probe reads the tokens themselves.
    probe/<probe>[_<labels>]     each configured probe's score (accuracy, or R^2 for a regression task)
    probe_chosen/<probe>_<param> what a probe chose on its validation split (e.g. linear l2)
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


def probe_metric_names(cfg: ProbedConfig) -> list[str]:
    """The names probe_metrics returns for `cfg` at the final evaluation (what an SSL method declares)."""
    names = [f"collapse/{k}" for k in COLLAPSE_METRICS]
    for p in cfg.probes:
        names += [f"probe/{probe_name(p)}", *(f"probe_chosen/{probe_name(p)}_{k}" for k in p.chooses)]
    return names


def probe_metrics(
    rep: Representation, task: LabeledTask, splits: Mapping[str, LabeledBatch], cfg: ProbedConfig, final: bool
) -> dict[str, float]:
    """The metrics of the module docstring for a frozen representation; `splits` = task.eval_splits()."""
    fit, score = splits["train"], splits["test"]
    tokens = {"fit": Features(rep.split_tokens(fit), fit.labels), "score": Features(rep.split_tokens(score), score.labels)}
    pooled = {k: Features(pool(f.x, rep.pooling), f.y) for k, f in tokens.items()}  # [S, D']
    metrics: dict[str, float] = {}
    for p in cfg.probes:
        if p.final_only and not final:
            continue
        data = tokens if p.reads_tokens else pooled
        on = data["fit"]
        if p.labels is not None and p.labels < len(on.y):
            on = on.subset(split_index(on.y, p.labels, p.label_seed, task.n_classes > 0)[0])
        result = PROBES.get(p.name).build(p)(on, data["score"], task.n_classes)
        metrics[f"probe/{probe_name(p)}"] = result.score
        metrics.update({f"probe_chosen/{probe_name(p)}_{k}": v for k, v in result.chosen.items()})
    stats = collapse_stats(pooled["score"].x)
    metrics.update({f"collapse/{k}": float(v) for k, v in stats.items()})
    metrics["collapse/log2_rank_centered"] = math.log2(stats["eff_rank_centered"])
    metrics["collapse/content_share"] = content_share(tokens["score"].x)
    return metrics
