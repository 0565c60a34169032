"""Probe a pre-trained run's frozen representation: the method of a probing stage (README, "Stages").

    stages:
      probe:
        from: pretrain                      # any run whose method provides "representation" (jepa, mae, raw)
        defaults:
          method: {name: probe, pooling: mean, probes: [{name: attentive}, {name: linear, labels: 256}]}
          training: {steps: 0}              # nothing is trained here: the probes are fit at the evaluation

The stage run rebuilds its source's method, loads the source's checkpoint from the store
(harness.runner.build_run) and `from_source` takes the source's `representation()` (its configured probe
encoder, e.g. a JEPA's target encoder) with this config's pooling and batch size.  `evaluate()` fits and scores
every configured probe on the stage's task's eval splits (the source's task unless the stage changes it):
probe/*, probe_chosen/* and collapse/* exactly as baselines/ssl/evaluation.py computes them for the
pre-training run.  The run's own model is built from the stage's config but never used (its weights are
not the representation).
"""

from __future__ import annotations

from torch import nn

from baselines.methods.raw import Untrained
from baselines.ssl.evaluation import ProbedConfig, probe_metric_names, probe_metrics
from baselines.ssl.representation import Representation
from baselines.tasks.labeled import LabeledTask, labeled_task
from harness.components import METHODS, Method, Task


class ProbeStageConfig(ProbedConfig):
    pass


class ProbeStage(Untrained):
    def __init__(self, cfg: ProbeStageConfig, task: LabeledTask) -> None:
        super().__init__(task)
        self.cfg = cfg
        self.rep: Representation | None = None

    def from_source(self, source: Method) -> None:
        rep = source.representation()
        self.rep = Representation(rep.encode, rep.module, self.cfg.pooling, self.cfg.eval_batch_size)

    def evaluate(self) -> dict[str, float]:
        if self.rep is None:
            raise RuntimeError("method probe reads a source run's representation: use it in a stage (`from:`)")
        return probe_metrics(self.rep, self.task, self.splits, self.cfg, final=True)


@METHODS.register("probe", ProbeStageConfig, requires={"representation"},
                  metrics=lambda cfg, task: probe_metric_names(cfg, task))
def build(cfg: ProbeStageConfig, model: nn.Module, task: Task) -> ProbeStage:
    return ProbeStage(cfg, labeled_task(task, "method probe"))
