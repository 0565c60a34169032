"""TI-JEPA (arXiv 2503.06380) over the JEPA core: unimodal towers pre-trained first, then a text-to-image fusion
trained with the JEPA objective on image target blocks while the towers stay frozen (a stage).

    pair_jepa  (stage 1) one JEPA per tower of a `two_tower` model, each its own mask sampler, predictor and EMA
               target (the jepa method's JEPA class, twice): the image tower predicts image blocks from image
               context, the text tower masked words from the other words (a latent-prediction stand-in for the
               paper's pre-trained text encoder; no MLM head).  Loss = the sum; train/image/*, train/text/*.
               Its representation is LATE FUSION: each target tower's tokens padded to width 2D (image tokens
               [z, 0], text tokens [0, z]), so the mean-pooled features are the two towers' means side by side
               (scaled by their token shares) and a linear probe on them is a sum f(image) + g(text).
    ti_jepa    (stage 2, from a pair_jepa run) the jepa method on a `ti_fusion` model: from_source loads the
               source's two TARGET towers into the fused encoder (and its EMA copy); `freeze: true` keeps them
               fixed, so only the fusion blocks and the predictor train (TI-JEPA's selective freezing),
               `freeze: false` trains them too (the unfrozen control).  The fused target encoder is probed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from baselines.methods.jepa import JEPA, LOSS_METRICS, JEPAConfig
from baselines.ssl.evaluation import ProbedConfig, probe_metric_names, probe_metrics
from baselines.ssl.masks import MaskedBatch, mask_stat_names
from baselines.ssl.representation import Representation
from baselines.ssl.text_image import FusedEncoder
from baselines.ssl.token_masks import RandomMaskConfig
from baselines.tasks.labeled import LabeledBatch, LabeledTask, labeled_task
from harness.components import METHODS, LossOutput, Method, Task

TOWERS = ("image", "text")


class TowerJEPAConfig(JEPAConfig):
    name: Literal["jepa"] = "jepa"


class PairJEPAConfig(ProbedConfig):
    pooling: Literal["mean"] = "mean"  # the late-fusion features are the towers' means (module docstring)
    image: TowerJEPAConfig = Field(default_factory=TowerJEPAConfig)
    text: TowerJEPAConfig = Field(default_factory=lambda: TowerJEPAConfig(mask=RandomMaskConfig(ratio=0.4)))


@dataclass
class PairBatch:
    """The same packed rows, masked once per tower."""

    image: MaskedBatch
    text: MaskedBatch

    def __len__(self) -> int:
        return len(self.image)

    def to(self, device: torch.device) -> PairBatch:
        return PairBatch(self.image.to(device), self.text.to(device))

    def slice(self, start: int, stop: int) -> PairBatch:
        return PairBatch(self.image.slice(start, stop), self.text.slice(start, stop))


class PairJEPA:
    def __init__(self, cfg: PairJEPAConfig, towers: nn.ModuleDict, task: LabeledTask) -> None:
        self.cfg, self.task = cfg, task
        self.jepas = {t: JEPA(getattr(cfg, t), towers[t], task) for t in TOWERS}
        self.module = nn.ModuleDict({t: j.module for t, j in self.jepas.items()})
        self.splits = task.eval_splits()
        self.step = 0

    def collate(self, batch: LabeledBatch, generator: torch.Generator) -> PairBatch:
        return PairBatch(*(self.jepas[t].collate(batch, generator) for t in TOWERS))

    def loss(self, batch: PairBatch) -> LossOutput:
        outs = {t: self.jepas[t].loss(getattr(batch, t)) for t in TOWERS}
        metrics = {f"{t}/{k}": v for t, out in outs.items() for k, v in out.metrics.items()}
        return LossOutput(loss=outs["image"].loss + outs["text"].loss, metrics=metrics)

    def after_step(self, step: int, total_steps: int) -> None:
        self.step = step
        for j in self.jepas.values():
            j.after_step(step, total_steps)

    def representation(self) -> Representation:
        image, text = self.jepas["image"].target, self.jepas["text"].target

        def late_fusion(inputs: torch.Tensor) -> torch.Tensor:
            zi, zt = image(inputs), text(inputs)  # [B, Ni, D], [B, L, D]
            return torch.cat([F.pad(zi, (0, zt.shape[-1])), F.pad(zt, (zi.shape[-1], 0))], dim=1)  # [B, Ni + L, 2D]

        return Representation(late_fusion, self.module, self.cfg.pooling, self.cfg.eval_batch_size)

    def evaluate(self) -> dict[str, float]:
        final = self.step >= self.jepas["image"].stream.total
        return {**probe_metrics(self.representation(), self.task, self.splits, self.cfg, final), "eval/step": float(self.step)}

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, **{f"{t}.{k}": v for t, j in self.jepas.items() for k, v in j.state_dict().items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        for t, j in self.jepas.items():
            j.load_state_dict({k.split(".", 1)[1]: v for k, v in state.items() if k.startswith(f"{t}.")})


def pair_metric_names(cfg: PairJEPAConfig, task: Task) -> list[str]:
    per_tower = [f"train/{t}/{k}" for t in TOWERS for k in (*LOSS_METRICS, "step", *mask_stat_names(getattr(cfg, t).mask))]
    return [*per_tower, *probe_metric_names(cfg, task), "eval/step"]


@METHODS.register("pair_jepa", PairJEPAConfig, provides={"representation", "towers"}, metrics=pair_metric_names)
def build_pair(cfg: PairJEPAConfig, model: nn.Module, task: Task) -> PairJEPA:
    if not (isinstance(model, nn.ModuleDict) and set(model.keys()) == set(TOWERS)):
        raise TypeError(f"method pair_jepa needs a two_tower model; {type(model).__name__} is not one")
    return PairJEPA(cfg, model, labeled_task(task, "method pair_jepa"))


class TIJEPAConfig(JEPAConfig):
    freeze: bool = True  # the pre-trained towers stay fixed: only the fusion and the predictor train


class TIJEPA(JEPA):
    def from_source(self, source: Method) -> None:
        if not isinstance(source, PairJEPA):
            raise TypeError(f"method ti_jepa starts from a pair_jepa run's towers; {type(source).__name__} has none")
        for t in TOWERS:
            weights = source.jepas[t].target.state_dict()  # the EMA towers (what I-JEPA keeps and probes)
            for encoder in (self.encoder, self.target):
                getattr(encoder, t).load_state_dict(weights)
            getattr(self.encoder, t).requires_grad_(not self.cfg.freeze)


@METHODS.register("ti_jepa", TIJEPAConfig, requires={"towers"}, provides={"representation"},
                  metrics=METHODS.get("jepa").metrics)
def build_ti(cfg: TIJEPAConfig, model: nn.Module, task: Task) -> TIJEPA:
    if not isinstance(model, FusedEncoder):
        raise TypeError(f"method ti_jepa needs a ti_fusion model; {type(model).__name__} is not one")
    return TIJEPA(cfg, model, labeled_task(task, "method ti_jepa"))
