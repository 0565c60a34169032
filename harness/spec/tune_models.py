"""Typed `tune:` blocks of a suite: the search space (float / log-float / int / categorical over
config paths), objective, trial count, sampler, pruner, and the cells a block applies to."""

from __future__ import annotations

import itertools
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import Field, model_validator

from harness.spec.base import Scalar, Seed, Strict


class FloatParam(Strict):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: Optional[float] = Field(None, gt=0)

    @model_validator(mode="after")
    def _range(self) -> FloatParam:
        _check_range(self.low, self.high, self.log)
        if self.log and self.step is not None:
            raise ValueError("'step' cannot be combined with 'log: true'")
        return self

    def values(self) -> list[Any]:
        return [self.low, self.high]


class IntParam(Strict):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _range(self) -> IntParam:
        _check_range(self.low, self.high, self.log)
        if self.log and self.step != 1:
            raise ValueError("'step' cannot be combined with 'log: true'")
        return self

    def values(self) -> list[Any]:
        return [self.low, self.high]


class CategoricalParam(Strict):
    type: Literal["categorical"]
    choices: list[Scalar] = Field(min_length=1)

    def values(self) -> list[Any]:
        return list(self.choices)


def _check_range(low: float, high: float, log: bool) -> None:
    if not low < high:
        raise ValueError(f"'low' must be below 'high', got low={low}, high={high}")
    if log and low <= 0:
        raise ValueError(f"a log-scale range needs low > 0, got {low}")


Param = Annotated[Union[FloatParam, IntParam, CategoricalParam], Field(discriminator="type")]


class SamplerSpec(Strict):
    """`grid` tries every point of the space once (categorical and int params only; `trials` = the number of
    points), in the order the space lists them: a sweep, resumable like any study."""

    name: Literal["tpe", "random", "grid"] = "tpe"
    seed: int = 0
    startup_trials: int = Field(5, ge=0, description="TPE: random trials before the model kicks in")


class PrunerSpec(Strict):
    """Fed by the loop's intermediate evaluations (`evaluation.every`) of the objective."""

    name: Literal["none", "median", "successive_halving"] = "median"
    startup_trials: int = Field(2, ge=0, description="median: trials finished before any pruning")
    warmup_steps: int = Field(0, ge=0, description="median: steps of a trial before it can be pruned")
    min_resource: int = Field(1, ge=1, description="successive halving: steps of the first rung")
    reduction_factor: int = Field(3, ge=2, description="successive halving: keep 1 / factor per rung")


class TuneSpec(Strict):
    """One hyper-parameter search, run separately in every cell of the grid it applies to."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    space: dict[str, Param] = Field(min_length=1, description="config path -> distribution")
    objective: str = Field(description="metric at the end of a trial (and at each evaluation, for pruning)")
    direction: Literal["maximize", "minimize"] = "maximize"
    trials: int = Field(ge=1, description="finished (complete or pruned) trials per cell")
    per: list[str] = Field(default_factory=list, description="config paths whose values make a cell; [] = one study")
    where: dict[str, Union[Scalar, list[Scalar]]] = Field(default_factory=dict, description="runs of the grid this block tunes "
                                                          "(ablations keep their own config)")
    seed: Optional[Seed] = Field(None, description="training seed of the trials (default: the suite's first seed)")
    set: dict[str, Any] = Field(default_factory=dict, description="config path -> value for trials only")
    sampler: SamplerSpec = SamplerSpec()
    pruner: PrunerSpec = PrunerSpec()
    storage: Optional[str] = Field(None, description="Optuna storage URL or journal file (default: next to the MLflow store)")

    @model_validator(mode="after")
    def _grid(self) -> TuneSpec:
        if self.sampler.name != "grid":
            return self
        for path, p in self.space.items():
            if isinstance(p, FloatParam):
                raise ValueError(f"the grid sampler takes categorical or int params; '{path}' is a float range (list its values as choices)")
        if self.trials != len(self.grid()):
            raise ValueError(f"the grid has {len(self.grid())} points; set trials: {len(self.grid())}")
        return self

    def grid(self) -> list[dict[str, Any]]:
        """Every point of a categorical / int space, first path slowest."""
        axes = {path: p.choices if isinstance(p, CategoricalParam) else list(range(p.low, p.high + 1, p.step))
                for path, p in self.space.items() if not isinstance(p, FloatParam)}
        return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
