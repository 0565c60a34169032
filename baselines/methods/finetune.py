"""Fine-tune a pre-trained run's encoder with a task head, through the one training loop (a stage's method).

    stages:
      finetune:
        from: pretrain
        where: {method.name: jepa}
        defaults:
          method: {name: finetune, labels: 256, freeze: false}
          training: {steps: 300}
          evaluation: {every: 100}

The stage run's model is built from its config (by default the source's: the same token encoder);
`from_source` loads into it the weights of the source's representation module (a JEPA's configured probe
encoder, e.g. its target encoder; an MAE's encoder).  Training batches are drawn (with the run's
generator, so a resumed run replays them) from the task's labeled fit split ("train"), cut to `labels`
examples stratified by class when set: the label-fraction axis of the JEPA papers' few-shot protocols.
`freeze: true` trains the head only (a linear probe trained by SGD).  `head` (HEADS, baselines/ssl/heads.py)
is what reads the encoder: `pooled` (default) a linear layer on the pooled tokens; S-JEPA's contextual,
post_local and pre_local heads (baselines/ssl/signal_heads.py) read the tokens, the local encoder alone, or
spatially filtered inputs through the local encoder.

    loss      cross-entropy of head(encoder, x) (MSE for a regression task); train/score per step
    evaluate  finetune/score on the "test" split: accuracy, or R^2 for a regression task
    representation()  the fine-tuned encoder: a probing stage after this one probes it like any SSL encoder
                      (the supervised ceiling of a suite's `references`)
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from baselines.ssl.encoder import TokenEncoder, token_encoder
from baselines.ssl.heads import HEADS, PooledHeadConfig, build_head
from baselines.ssl.probes import split_index
from baselines.ssl.registered import Registered
from baselines.ssl.representation import Representation
from baselines.tasks.labeled import LabeledBatch, LabeledTask, labeled_task
from harness.components import METHODS, LossOutput, Method, Task
from harness.registry import ComponentConfig


class FinetuneConfig(ComponentConfig):
    pooling: Literal["mean", "max", "mean_max"] = "mean"
    freeze: bool = False  # True: the encoder stays as pre-trained, only the head trains
    labels: int | None = Field(default=None, ge=2)  # examples of the fit split to train on (None: all of it)
    label_seed: int = 0
    eval_batch_size: int = Field(default=512, ge=1)
    head: Registered(HEADS) = Field(default_factory=PooledHeadConfig)


def score(pred: torch.Tensor, y: torch.Tensor, n_classes: int) -> float:
    """Accuracy of logits [S, C], or R^2 of predictions [S, 1] against y [S]."""
    if n_classes > 0:
        return (pred.argmax(dim=1) == y).double().mean().item()
    resid = ((pred[:, 0].double() - y.double()) ** 2).sum()
    return 1.0 - (resid / ((y.double() - y.double().mean()) ** 2).sum().clamp_min(1e-12)).item()


class Finetune:
    def __init__(self, cfg: FinetuneConfig, encoder: TokenEncoder, task: LabeledTask) -> None:
        self.cfg, self.task = cfg, task
        splits = task.eval_splits()
        fit, self.test = splits["train"], splits["test"]
        if cfg.labels is not None and cfg.labels < len(fit):
            fit = fit.subset(torch.as_tensor(split_index(fit.labels, cfg.labels, cfg.label_seed, task.n_classes > 0)[0]))
        self.fit = fit
        head = build_head(cfg.head, encoder, max(task.n_classes, 1), cfg.pooling)
        self.module = nn.ModuleDict({"encoder": encoder, "head": head})

    @property
    def encoder(self) -> TokenEncoder:
        return self.module["encoder"]

    def representation(self) -> Representation:
        """The fine-tuned encoder, for a later probing stage (e.g. a supervised ceiling probed like the SSL arms)."""
        return Representation(self.encoder, self.encoder, self.cfg.pooling, self.cfg.eval_batch_size)

    def from_source(self, source: Method) -> None:
        rep = source.representation()
        if rep.module is None:
            raise ValueError(f"method finetune needs an encoder to start from; {type(source).__name__} has none")
        self.encoder.load_state_dict(rep.module.state_dict())
        self.encoder.requires_grad_(not self.cfg.freeze)

    def collate(self, batch: LabeledBatch, generator: torch.Generator) -> LabeledBatch:
        return self.fit.subset(torch.randint(len(self.fit), (len(batch),), generator=generator))

    def predict(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.module["head"](self.encoder, inputs)  # [B, C]

    def loss(self, batch: LabeledBatch) -> LossOutput:
        pred = self.predict(batch.inputs)
        n = self.task.n_classes
        loss = F.cross_entropy(pred, batch.labels) if n > 0 else F.mse_loss(pred[:, 0], batch.labels.float())
        return LossOutput(loss=loss, metrics={"score": score(pred.detach(), batch.labels, n)})

    def after_step(self, step: int, total_steps: int) -> None:
        pass

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        was_training = self.module.training
        self.module.eval()
        device = next(self.module.parameters()).device
        try:
            step = self.cfg.eval_batch_size
            preds = [self.predict(self.test.slice(i, i + step).inputs.to(device)).cpu() for i in range(0, len(self.test), step)]
        finally:
            self.module.train(was_training)
        out = {"finetune/score": score(torch.cat(preds), self.test.labels, self.task.n_classes)}
        if self.task.n_classes > 0:  # an accuracy: a proportion of the test items
            out["items/finetune/score"] = float(len(self.test))
        return out


@METHODS.register("finetune", FinetuneConfig, requires={"representation"}, provides={"representation"},
                  metrics=lambda cfg, task: ["train/score", "finetune/score", *(["items/finetune/score"] if task.n_classes > 0 else [])])
def build(cfg: FinetuneConfig, model: nn.Module, task: Task) -> Finetune:
    return Finetune(cfg, token_encoder(model, "method finetune"), labeled_task(task, "method finetune"))
