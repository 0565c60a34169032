"""Callbacks observe the loop; they never fork it."""

from __future__ import annotations

import math
from typing import Protocol


class StopRun(Exception):
    """A callback ends the run early and on purpose (e.g. a pruned tuning trial) by raising a
    subclass; the worker records `outcome=<reason>` and terminates the run KILLED, not FAILED."""

    reason = "stopped"


class Callback(Protocol):
    def on_step(self, step: int, scalars: dict[str, float]) -> None: ...

    def on_eval(self, step: int, metrics: dict[str, float]) -> None: ...


class MetricsSink(Protocol):
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...


class LogTo:
    """Forwards training scalars every `every` steps, and every evaluation, to a sink (the tracker)."""

    def __init__(self, sink: MetricsSink, every: int) -> None:
        self.sink, self.every = sink, every

    def on_step(self, step: int, scalars: dict[str, float]) -> None:
        if step % self.every == 0 or step == 1 or not all(math.isfinite(v) for v in scalars.values()):
            self.sink.log_metrics({f"train/{k}": v for k, v in scalars.items()}, step)

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        self.sink.log_metrics(metrics, step)


class EvalEvery:
    """Decides when the loop evaluates: every `every` steps (None: only at the end)."""

    def __init__(self, every: int | None) -> None:
        self.every = every

    def due(self, step: int) -> bool:
        return self.every is not None and step % self.every == 0
