"""Generate a task's label text from a pre-trained run's encoder: UI-JEPA's intent decoder, as a stage method
(README, "Stages"); the finetune method with a text decoder (baselines/ssl/text_decoder.py) for its head.

    stages:
      decode:
        from: pretrain
        defaults:
          method: {name: intent_decoder, labels: 200, freeze: true}   # 200 labelled recordings, frozen encoder
          training: {steps: 300}

`from_source`, the label subset (`labels`, stratified) and the training batches are finetune's.  The task gives
each class's text (`texts [C, L]` token ids, `vocab`, with "<pad>", "<bos>", "<eos>"; e.g. synth_ui_video).

    loss      teacher forcing: cross-entropy of decoder(texts[:, :-1], encoder(x)) against texts[:, 1:], <pad>
              ignored; train/token_acc and train/step per step.  `freeze: false` trains the encoder too: from an untrained
              source run, supervised training from scratch of encoder + decoder.
    evaluate  greedy generation on the "test" split: decode/exact (the whole text up to <eos> right),
              decode/token_f1 (bag of content tokens), decode/loss (teacher-forced cross-entropy per token)
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from baselines.methods.finetune import Finetune, FinetuneConfig
from baselines.ssl.encoder import TokenEncoder, token_encoder
from baselines.ssl.text_decoder import TextDecoder, greedy, teacher_forcing, token_f1, until_eos
from baselines.tasks.labeled import LabeledBatch, LabeledTask, labeled_task
from harness.components import METHODS, LossOutput, Task


@runtime_checkable
class TextLabeledTask(LabeledTask, Protocol):
    texts: torch.Tensor  # [n_classes, L] long: each class's text, <bos> ... <eos> <pad>...
    vocab: tuple[str, ...]


class IntentDecoderConfig(FinetuneConfig):
    d_model: int = Field(default=32, ge=4)
    n_layers: int = Field(default=2, ge=1)
    n_heads: int = Field(default=4, ge=1)
    d_ff: int | None = Field(default=None, ge=1)  # None -> 4 * d_model


class IntentDecoder(Finetune):
    def __init__(self, cfg: IntentDecoderConfig, encoder: TokenEncoder, task: TextLabeledTask) -> None:
        super().__init__(cfg, encoder, task)
        self.texts = task.texts
        self.pad, self.bos, self.eos = (task.vocab.index(w) for w in ("<pad>", "<bos>", "<eos>"))
        decoder = TextDecoder(len(task.vocab), task.texts.shape[1], encoder.d_model, cfg.d_model, cfg.n_layers,
                              cfg.n_heads, cfg.d_ff)
        self.module = nn.ModuleDict({"encoder": encoder, "decoder": decoder})  # replaces finetune's linear head
        self.step = 0  # optimizer steps done (train/step: the x axis of figures over training)

    def logits(self, batch: LabeledBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced logits [B, L-1, V] and their targets [B, L-1]."""
        texts = self.texts.to(batch.labels.device)[batch.labels]  # [B, L]
        inputs, targets = teacher_forcing(texts)
        return self.module["decoder"](inputs, self.encoder(batch.inputs)), targets

    def loss(self, batch: LabeledBatch) -> LossOutput:
        logits, targets = self.logits(batch)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=self.pad)
        scored = targets != self.pad
        acc = ((logits.detach().argmax(-1) == targets) & scored).sum() / scored.sum()
        return LossOutput(loss=loss, metrics={"token_acc": acc.item(), "step": float(self.step + 1)})

    def after_step(self, step: int, total_steps: int) -> None:
        self.step = step

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step = int(state["step"])

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        was_training = self.module.training
        self.module.eval()
        device = next(self.module.parameters()).device
        exact, f1, loss_sum, tokens = [], [], 0.0, 0
        try:
            for i in range(0, len(self.test), self.cfg.eval_batch_size):
                batch = self.test.slice(i, i + self.cfg.eval_batch_size).to(device)
                ref = self.texts.to(device)[batch.labels]  # [b, L]
                pred = greedy(self.module["decoder"], self.encoder(batch.inputs), self.bos, ref.shape[1])  # [b, L]
                exact += [until_eos(p, self.eos) == until_eos(r, self.eos) for p, r in zip(pred.tolist(), ref.tolist())]
                f1.append(token_f1(pred.cpu(), ref.cpu(), {self.pad, self.bos, self.eos}, self.eos))
                logits, targets = self.logits(batch)
                loss_sum += F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=self.pad, reduction="sum").item()
                tokens += int((targets != self.pad).sum())
        finally:
            self.module.train(was_training)
        return {"decode/exact": sum(exact) / len(exact), "items/decode/exact": float(len(exact)),  # a proportion of the recordings
                "decode/token_f1": torch.cat(f1).mean().item(), "decode/loss": loss_sum / tokens}


def text_task(task: Task, user: str) -> TextLabeledTask:
    if not isinstance(task, TextLabeledTask):
        raise TypeError(f"{user} needs a task whose classes have texts (texts, vocab; e.g. synth_ui_video); "
                        f"{type(task).__name__} has none")
    return task


@METHODS.register("intent_decoder", IntentDecoderConfig, requires={"representation"},
                  metrics=lambda cfg, task: ["train/token_acc", "train/step", "decode/exact", "items/decode/exact", "decode/token_f1", "decode/loss"])
def build(cfg: IntentDecoderConfig, model: nn.Module, task: Task) -> IntentDecoder:
    return IntentDecoder(cfg, token_encoder(model, "method intent_decoder"), text_task(labeled_task(task, "method intent_decoder"), "method intent_decoder"))
