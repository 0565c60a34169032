"""No pre-training: the representation is the tokenizer's raw content (the pixels of each patch, the value of
each table column), the baseline "raw features + the same probe" (T-JEPA's raw-feature MLP, the gradient
boosting reference).

Nothing is trained: `module` holds no parameters and the loss is a constant 0 (run it for one step).  The
model is the token encoder whose tokenizer defines the tokens; its weights are never used.  With the
default `flatten` pooling the probes read every token's content side by side (a table's columns, an image's
pixels in patch order).  evaluate(): the probes and collapse/* of baselines/ssl/evaluation.py.
"""

from __future__ import annotations

import torch
from torch import nn

from baselines.ssl.encoder import TokenEncoder, token_encoder
from baselines.ssl.evaluation import ProbedConfig, probe_metric_names, probe_metrics
from baselines.ssl.representation import Pooling, Representation
from baselines.tasks.labeled import LabeledBatch, LabeledTask, labeled_task
from harness.components import METHODS, LossOutput, Task


class RawConfig(ProbedConfig):
    pooling: Pooling = "flatten"


class Untrained:
    """What a method that trains nothing shares (raw; a probing stage's probe): no parameters, a constant loss."""

    def __init__(self, task: LabeledTask) -> None:
        self.task = task
        self.module = nn.ModuleDict()  # nothing to train
        self.splits = task.eval_splits()

    def collate(self, batch: LabeledBatch, generator: torch.Generator) -> LabeledBatch:
        return batch

    def loss(self, batch: LabeledBatch) -> LossOutput:
        return LossOutput(loss=torch.zeros((), requires_grad=True))

    def after_step(self, step: int, total_steps: int) -> None:
        pass


class Raw(Untrained):
    def __init__(self, cfg: RawConfig, encoder: TokenEncoder, task: LabeledTask) -> None:
        super().__init__(task)
        self.cfg, self.tokenizer = cfg, encoder.tokenizer

    def representation(self) -> Representation:
        def content(inputs: torch.Tensor) -> torch.Tensor:
            return self.tokenizer.content(inputs, self.tokenizer.layout_of(inputs))  # [B, N, P]

        return Representation(content, None, self.cfg.pooling, self.cfg.eval_batch_size)

    def evaluate(self) -> dict[str, float]:
        return probe_metrics(self.representation(), self.task, self.splits, self.cfg, final=True)


@METHODS.register("raw", RawConfig, provides={"representation"}, metrics=lambda cfg, task: probe_metric_names(cfg, task))
def build(cfg: RawConfig, model: nn.Module, task: Task) -> Raw:
    return Raw(cfg, token_encoder(model, "method raw"), labeled_task(task, "method raw"))
