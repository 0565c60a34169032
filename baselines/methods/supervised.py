"""Plain supervised training: token-level cross-entropy on the target positions (targets != IGNORE_INDEX).

evaluate() reports `examples_seen` (training examples consumed so far, packed ones counted singly: the x
axis of sample-efficiency curves) and, for every eval split s of the task:
    exact/{s}      fraction of rows whose every target position is predicted right (argmax)
    token_acc/{s}  fraction of target positions predicted right
    loss/{s}       mean cross-entropy per target position
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from harness.components import IGNORE_INDEX, METHODS, Batch, LossOutput, Task, TokenTask, token_task
from harness.registry import ComponentConfig


class SupervisedConfig(ComponentConfig):
    eval_batch_size: int = Field(default=512, ge=1)


class Supervised:
    def __init__(self, cfg: SupervisedConfig, model: nn.Module, task: TokenTask) -> None:
        self.cfg = cfg
        self.module = model
        self.task = task
        self.examples_seen = 0

    def _device(self) -> torch.device:
        return next(self.module.parameters()).device

    def collate(self, batch: Batch, generator: torch.Generator) -> Batch:
        return batch

    def after_step(self, step: int, total_steps: int) -> None:
        pass

    def state_dict(self) -> dict[str, int]:
        """Training state outside `module`, for resume checkpoints (harness.train.resume.Stateful)."""
        return {"examples_seen": self.examples_seen}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.examples_seen = state["examples_seen"]

    @staticmethod
    def loss_units(batch: Batch) -> int:
        """Target positions scored (the cross-entropy is their mean): gradient accumulation's weights."""
        return int((batch.targets != IGNORE_INDEX).sum())

    @staticmethod
    def tokens_in(batch: Batch) -> int:
        return batch.inputs.numel()

    def loss(self, batch: Batch) -> LossOutput:
        device = self._device()
        inputs, targets = batch.inputs.to(device), batch.targets.to(device)  # [B, T] each
        self.examples_seen += self.task.examples_in(batch)
        logits = self.module(inputs)  # [B, T, V]
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)
        with torch.no_grad():
            scored = targets != IGNORE_INDEX  # [B, T]
            correct = (logits.argmax(-1) == targets) & scored
            token_acc = correct.sum().item() / max(scored.sum().item(), 1)
        return LossOutput(loss=loss, metrics={"token_acc": token_acc})

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        was_training = self.module.training
        self.module.eval()
        device = self._device()
        metrics: dict[str, float] = {"examples_seen": float(self.examples_seen)}
        try:
            for split, data in self.task.eval_splits().items():
                rows_right = tokens_right = tokens = 0
                loss_sum = 0.0
                for start in range(0, len(data), self.cfg.eval_batch_size):
                    batch = data.slice(start, start + self.cfg.eval_batch_size)
                    inputs, targets = batch.inputs.to(device), batch.targets.to(device)  # [b, T]
                    logits = self.module(inputs)  # [b, T, V]
                    scored = targets != IGNORE_INDEX  # [b, T]
                    right = (logits.argmax(-1) == targets) | ~scored  # [b, T]
                    rows_right += right.all(dim=1).sum().item()
                    tokens_right += (right & scored).sum().item()
                    tokens += scored.sum().item()
                    loss_sum += F.cross_entropy(
                        logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
                    ).item()
                metrics[f"exact/{split}"] = rows_right / len(data)
                metrics[f"items/exact/{split}"] = float(len(data))  # exact match is a proportion of these rows
                metrics[f"token_acc/{split}"] = tokens_right / max(tokens, 1)
                metrics[f"loss/{split}"] = loss_sum / max(tokens, 1)
        finally:
            self.module.train(was_training)
        return metrics


def metric_names(cfg: SupervisedConfig, task: Task) -> list[str]:
    """What evaluate() and the training step log (module docstring), for the task's eval splits."""
    splits = list(task.eval_splits())
    return ["examples_seen", "train/token_acc", *(f"{m}/{s}" for s in splits for m in ("exact", "token_acc", "loss", "items/exact"))]


@METHODS.register("supervised", SupervisedConfig, metrics=metric_names)
def build(cfg: SupervisedConfig, model: nn.Module, task: Task) -> Supervised:
    return Supervised(cfg, model, token_task(task, "method supervised"))
