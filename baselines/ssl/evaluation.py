"""The evaluation shared by every SSL method: probe a frozen encoder on the task's eval splits.

features = mean over all patches of the encoder's output tokens, on eval split "train" (the probe's fit set)
and "test" (its score set):
    probe/linear        test accuracy of a linear classifier fit on the frozen train features
    probe/knn           test accuracy of cosine k-NN (k = knn_k, features centered on the train mean)
    collapse/std_mean   per-dimension std of the l2-normalized test features, mean over dimensions
                        (healthy ~ 1/sqrt(D), complete collapse -> 0)
    collapse/std_min    ... its minimum over dimensions (a dead dimension -> 0)
    collapse/eff_rank   RankMe effective rank of the test features, in [1, D]
    collapse/eff_rank_centered   the same after subtracting the mean feature (spread, not the shared offset)
The probes and monitors themselves are baselines/ssl/probes.py; this module only extracts features.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from pydantic import Field

from baselines.ssl.probes import collapse_stats, knn_accuracy, linear_probe
from baselines.ssl.vit import ViT
from baselines.tasks.images import ImageBatch, ImageTask
from harness.registry import ComponentConfig


@torch.no_grad()
def pooled_features(encoder: ViT, data: ImageBatch, batch_size: int) -> torch.Tensor:
    """Mean-pooled encoder outputs over all patches: [N, D] on CPU, encoder in eval mode."""
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    try:
        chunks = []
        for start in range(0, len(data), batch_size):
            images = data.slice(start, start + batch_size).to(device).images  # [b, C, H, W]
            chunks.append(encoder(images).mean(dim=1).cpu())  # [b, D]
        return torch.cat(chunks)  # [N, D]
    finally:
        encoder.train(was_training)


PROBE_METRICS = ("probe/linear", "probe/knn", "collapse/std_mean", "collapse/std_min", "collapse/eff_rank",
                 "collapse/eff_rank_centered")  # what probe_metrics returns (the metric names an SSL method declares)


class ProbedConfig(ComponentConfig):
    """Base of the SSL method configs: how their encoder is probed."""

    eval_batch_size: int = Field(default=512, ge=1)
    knn_k: int = Field(default=20, ge=1)
    probe_weight_decay: float = Field(default=1e-4, ge=0.0)


def probe_metrics(encoder: ViT, task: ImageTask, splits: Mapping[str, ImageBatch], cfg: ProbedConfig) -> dict[str, float]:
    """The probe and collapse metrics of the module docstring for a frozen encoder; `splits` = task.eval_splits()."""
    train, test = splits["train"], splits["test"]
    train_x = pooled_features(encoder, train, cfg.eval_batch_size)  # [N_train, D]
    test_x = pooled_features(encoder, test, cfg.eval_batch_size)  # [N_test, D]
    metrics = {
        "probe/linear": linear_probe(
            train_x, train.labels, test_x, test.labels, task.n_classes, weight_decay=cfg.probe_weight_decay
        ),
        "probe/knn": knn_accuracy(train_x, train.labels, test_x, test.labels, k=cfg.knn_k),
    }
    metrics.update({f"collapse/{name}": float(value) for name, value in collapse_stats(test_x).items()})
    return metrics
