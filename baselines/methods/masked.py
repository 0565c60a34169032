"""What the masked SSL methods (jepa, mae) share: masks drawn in the data stream with the training progress,
the step counter, and the probing of their representation.

    collate(batch, generator)   -> MaskedBatch (MaskStream: the sampler sees progress (k - 1) / total at step k)
    after_step(step, total)     records the step (and the total, for the next batches' progress)
    step_metrics(batch)         train/step and the sampler's stats, for the loss metrics
    evaluate()                  probe metrics of `representation()` (baselines/ssl/evaluation.py), the
                                final_only probes at the last step; eval/step = the step evaluated at, so
                                report figures can plot any evaluation metric over training (`over: eval/step`)
    state_dict / load_state_dict  the step and the stream's counters (resume checkpoints)

A method adds its module, `loss` and `representation()`.
"""

from __future__ import annotations

from typing import Any

import torch

from baselines.ssl.encoder import TokenEncoder
from baselines.ssl.evaluation import ProbedConfig, probe_metric_names, probe_metrics
from baselines.ssl.masks import MaskedBatch, MaskStream, build_mask_sampler, mask_stat_names
from baselines.ssl.representation import Representation
from baselines.tasks.labeled import LabeledBatch, LabeledTask
from harness.registry import ComponentConfig


def masked_metric_names(cfg: ProbedConfig, mask: ComponentConfig, loss_metrics: tuple[str, ...], task: LabeledTask | None = None) -> list[str]:
    """What a masked method logs (its METHODS.register(..., metrics=) declaration): the loss's own scalars
    and step_metrics under train/, the probes and eval/step at each evaluation."""
    step = [*loss_metrics, "step", *mask_stat_names(mask)]
    return [*(f"train/{k}" for k in step), *probe_metric_names(cfg, task), "eval/step"]


class MaskedMethod:
    def __init__(self, cfg: ProbedConfig, mask: ComponentConfig, encoder: TokenEncoder, task: LabeledTask) -> None:
        self.cfg, self.task = cfg, task
        self.stream = MaskStream(build_mask_sampler(mask, encoder.layout), encoder.tokenizer.layout_of)
        self.splits = task.eval_splits()
        self.step = 0

    def collate(self, batch: LabeledBatch, generator: torch.Generator) -> MaskedBatch:
        return self.stream(batch, generator)

    def after_step(self, step: int, total_steps: int) -> None:
        self.step = step
        self.stream.saw_step(total_steps)

    def representation(self) -> Representation:
        raise NotImplementedError

    def step_metrics(self, batch: MaskedBatch) -> dict[str, float]:
        """Per-step scalars every masked method logs: the step (so figures can plot any training metric over
        `train/step`) and the mask sampler's stats."""
        return {"step": float(self.stream.drawn), **batch.masks.stats}

    def evaluate(self) -> dict[str, float]:
        final = self.step >= self.stream.total
        metrics = probe_metrics(self.representation(), self.task, self.splits, self.cfg, final)
        metrics["eval/step"] = float(self.step)
        return metrics

    def state_dict(self) -> dict[str, Any]:
        """Training state outside `module`, for resume checkpoints (harness.train.resume.Stateful)."""
        return {"step": self.step, **self.stream.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.stream.load_state_dict(state)
