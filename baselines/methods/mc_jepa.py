"""MC-JEPA (Bardes, Ponce, LeCun 2023, "MC-JEPA: A Joint-Embedding Predictive Architecture for Self-Supervised
Learning of Motion and Content Features"): one shared encoder trained by a list of registered objectives.

    encoder     the model: a ConvPyramid (`conv_pyramid`, baselines/ssl/pyramid.py)
    objectives  `objectives`: OBJECTIVES configs (baselines/ssl/objectives.py), each with its weight:
                  flow    coarse-to-fine flow whose warped features of frame 2 regress frame 1's (+ photometric,
                          smoothness): the motion branch, a latent prediction with the flow as the latent
                  vicreg  VICReg on two views of still frames: the content branch
                  varcov  the variance-covariance regularizer on every pyramid level
                The arms of the paper's ablation are configs of this one method: flow only = [flow, varcov],
                VICReg only = [vicreg], MC-JEPA = [flow, vicreg, varcov], without var-cov = [flow, vicreg].
    loss        sum of weight x objective; per step train/<objective>/<term> and train/step
    collate     in the data stream: a PairBatch (the frames; two augmented views of the still frames when an
                objective needs them, baselines/ssl/vicreg.py augment)

evaluate(): the class probes and collapse/* of baselines/ssl/evaluation.py on the mean-pooled coarsest level
(`representation()`, as the probe stage reads it); flow/epe (end-point error of the full-size flow on the
task's "flow" split, pixels), flow/log_epe (its log: "within 10% of" is a difference of logs) and flow/epe_zero
(the zero flow's: the reference) when a flow objective is trained; at the last evaluation the dense 1x1 probe
(baselines/ssl/dense.py): dense/miou and dense/pixel_acc over 9 classes (background + 8); eval/step.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from pydantic import Field, field_validator
from torch import nn

from baselines.ssl.dense import dense_probe
from baselines.ssl.evaluation import ProbedConfig, probe_metric_names, probe_metrics
from baselines.ssl.flow import end_point_error
from baselines.ssl.objectives import OBJECTIVES, Encoded, FlowConfig, PairBatch, VarCovConfig, VicregConfig
from baselines.ssl.pyramid import ConvPyramid
from baselines.ssl.registered import Registered
from baselines.ssl.representation import Representation
from baselines.ssl.vicreg import augment
from baselines.tasks.motion import N_CLASSES, MotionBatch, MotionTask
from harness.components import METHODS, LossOutput, Task


class MCJEPAConfig(ProbedConfig):
    objectives: list[Registered(OBJECTIVES)] = Field(
        default_factory=lambda: [FlowConfig(), VicregConfig(), VarCovConfig()], min_length=1)
    dense_pixels: int = Field(default=16384, ge=16)  # fit pixels of the dense probe
    dense_l2: float = Field(default=1e-3, ge=0.0)
    dense_max_iter: int = Field(default=100, ge=1)

    @field_validator("objectives")
    @classmethod
    def _once_each(cls, value: list) -> list:
        names = [o.name for o in value]
        if len(set(names)) < len(names):
            raise ValueError(f"each objective at most once, got {names}")
        return value


class MCJEPA:
    def __init__(self, cfg: MCJEPAConfig, encoder: ConvPyramid, task: MotionTask) -> None:
        self.cfg, self.task = cfg, task
        objectives = nn.ModuleDict({o.name: OBJECTIVES.get(o.name).build(o, encoder) for o in cfg.objectives})
        self.module = nn.ModuleDict({"encoder": encoder, "objectives": objectives})
        self.weights = {o.name: o.weight for o in cfg.objectives}
        self.views = any(o.needs_views for o in cfg.objectives)
        self.splits = task.eval_splits()
        self.step, self.total = 0, 0

    @property
    def encoder(self) -> ConvPyramid:
        return self.module["encoder"]

    def collate(self, batch: MotionBatch, generator: torch.Generator) -> PairBatch:
        if not self.views:
            return PairBatch(batch.frames, None)
        views = torch.stack([augment(batch.stills, generator), augment(batch.stills, generator)], dim=1)  # [B, 2, 3, H, W]
        return PairBatch(batch.frames, views)

    def loss(self, batch: PairBatch) -> LossOutput:
        enc = Encoded(self.encoder, batch)
        total = torch.zeros((), device=batch.frames.device)
        metrics: dict[str, float] = {"step": float(self.step + 1)}
        for name, objective in self.module["objectives"].items():
            loss, terms = objective(enc)
            total = total + self.weights[name] * loss
            metrics[f"{name}/loss"] = loss.item()
            metrics.update({f"{name}/{k}": v for k, v in terms.items()})
        return LossOutput(loss=total, metrics=metrics)

    def after_step(self, step: int, total_steps: int) -> None:
        self.step, self.total = step, total_steps

    def representation(self) -> Representation:
        return Representation(self.encoder.tokens, self.encoder, self.cfg.pooling, self.cfg.eval_batch_size)

    @torch.no_grad()
    def flow_metrics(self) -> dict[str, float]:
        flow, split, errors, zero = self.module["objectives"]["flow"], self.splits["flow"], [], []
        was = self.module.training
        self.module.eval()
        device = next(self.module.parameters()).device
        try:
            for i in range(0, len(split), self.cfg.eval_batch_size):
                part = split.slice(i, i + self.cfg.eval_batch_size).to(device)
                errors.append(end_point_error(flow.flow(part.frames, encoder=self.encoder), part.flow))  # [b]
                zero.append(part.flow.norm(dim=1).flatten(1).mean(dim=1))  # [b]
        finally:
            self.module.train(was)
        epe = torch.cat(errors).mean().item()
        return {"flow/epe": epe, "flow/log_epe": math.log(max(epe, 1e-12)), "flow/epe_zero": torch.cat(zero).mean().item()}

    def dense_metrics(self) -> dict[str, float]:
        was = self.module.training
        self.module.eval()
        device = next(self.module.parameters()).device
        try:
            fit, score = self.splits["train"], self.splits["test"]
            out = dense_probe(lambda x: self.encoder(x.to(device)), (fit.inputs, fit.masks), (score.inputs, score.masks),
                              N_CLASSES + 1, self.cfg.dense_pixels, self.cfg.dense_l2, self.cfg.dense_max_iter,
                              batch_size=self.cfg.eval_batch_size)
        finally:
            self.module.train(was)
        return {f"dense/{k}": v for k, v in out.items()}

    def evaluate(self) -> dict[str, float]:
        final = self.step >= self.total
        metrics = probe_metrics(self.representation(), self.task, self.splits, self.cfg, final)
        if "flow" in self.module["objectives"]:
            metrics.update(self.flow_metrics())
        if final:
            metrics.update(self.dense_metrics())
        metrics["eval/step"] = float(self.step)
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "total": self.total}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step, self.total = int(state["step"]), int(state["total"])


def metric_names(cfg: MCJEPAConfig, task: Task) -> list[str]:
    names = ["train/step", *probe_metric_names(cfg, task), "dense/miou", "dense/pixel_acc", "eval/step"]
    for o in cfg.objectives:
        names += [f"train/{o.name}/{k}" for k in ("loss", *o.terms)]
    if any(o.name == "flow" for o in cfg.objectives):
        names += ["flow/epe", "flow/log_epe", "flow/epe_zero"]
    return names


@METHODS.register("mc_jepa", MCJEPAConfig, provides={"representation"}, metrics=metric_names)
def build(cfg: MCJEPAConfig, model: nn.Module, task: Task) -> MCJEPA:
    if not isinstance(model, ConvPyramid):
        raise TypeError(f"method mc_jepa needs the conv_pyramid model, got {type(model).__name__}")
    if not isinstance(task, MotionTask):
        raise TypeError(f"method mc_jepa needs the moving_shapes task, got {type(task).__name__}")
    return MCJEPA(cfg, model, task)
