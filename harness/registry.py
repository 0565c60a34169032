"""One generic registry for every kind of component (tasks, models, methods, ...), and the three
registries a run's config names (TASKS, MODELS, METHODS; their builders' types are in
harness.components).  No torch here: the spec layer validates configs through these registries.

A component is registered by name together with the pydantic config class that
validates its parameters.  Unknown names fail with a did-you-mean suggestion.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

F = TypeVar("F", bound=Callable)


class ComponentConfig(BaseModel):
    """Base of every component config: a registered `name` plus typed parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str

    def held_bytes(self) -> dict[str, int]:
        """Bytes of data the built component holds in memory, by the config key that sets their amount (e.g.
        a task's `train_size`): checked against the machine before it is built (harness.validate).  A task
        that generates data up front overrides this; {} = negligible."""
        return {}

    def dry_config(self, batch_size: int = 16) -> ComponentConfig:
        """The config the dry build (harness.validate) and the cost estimate (harness.estimate) build instead:
        the same shapes (vocabulary, lengths, image size, eval split names) with few examples, but at least one
        training batch of `batch_size`, so that validating stays cheap.  Default: this config."""
        return self


class RegistryError(LookupError):
    """An unknown name was looked up; the message carries a did-you-mean hint."""


def did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


@dataclass(frozen=True)
class Entry(Generic[F]):
    """A registered component.  `provides` / `requires`: capabilities a stage run's method needs from its
    source run's method (e.g. "tokens": token features of a trained encoder); `requires` may be a function
    of the component's config (a probe that needs tokens only for some probe kinds)."""

    name: str
    config: type[ComponentConfig]
    build: F
    provides: frozenset[str] = frozenset()
    requires: frozenset[str] | Callable[[Any], frozenset[str]] = frozenset()
    metrics: Callable[[Any, Any], Iterable[str]] | None = None  # a method's: (its config, the built task) -> names

    def requires_for(self, cfg: ComponentConfig) -> frozenset[str]:
        return self.requires(cfg) if callable(self.requires) else self.requires


class Registry(Generic[F]):
    """Maps names to (config class, builder).  `kind` is used in error messages.  A registry with
    `declares_metrics` (METHODS) takes from each component the metric names it logs for a config:
    `metrics(cfg, task) -> names` (the evaluation's and the training step's, these as `train/<name>`), which
    `harness validate` checks every metric a report, claim or tune objective names against."""

    def __init__(self, kind: str, declares_metrics: bool = False) -> None:
        self.kind = kind
        self.declares_metrics = declares_metrics
        self._entries: dict[str, Entry[F]] = {}

    def register(self, name: str, config: type[ComponentConfig], provides: Iterable[str] = (),
                 requires: Iterable[str] | Callable[[Any], frozenset[str]] = (),
                 metrics: Callable[[Any, Any], Iterable[str]] | None = None) -> Callable[[F], F]:
        if self.declares_metrics and metrics is None:
            raise ValueError(f"{self.kind} '{name}' must declare the metric names it logs: "
                             f"register(..., metrics=lambda cfg, task: [...])")

        def deco(build: F) -> F:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            needs = requires if callable(requires) else frozenset(requires)
            self._entries[name] = Entry(name, config, build, frozenset(provides), needs, metrics)
            return build

        return deco

    def get(self, name: str) -> Entry[F]:
        try:
            return self._entries[name]
        except KeyError:
            known = sorted(self._entries)
            raise RegistryError(
                f"unknown {self.kind} '{name}'{did_you_mean(name, known)} (known: {', '.join(known)})"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries


TASKS: Registry[Callable[..., Any]] = Registry("task")  # build(cfg, seed) -> Task
MODELS: Registry[Callable[..., Any]] = Registry("model")  # build(cfg, task) -> nn.Module
METHODS: Registry[Callable[..., Any]] = Registry("method", declares_metrics=True)  # build(cfg, model, task) -> Method
REGISTRIES: dict[str, Registry] = {"task": TASKS, "model": MODELS, "method": METHODS}  # by config key


def must_divide(field: str, width: str) -> classmethod:
    """A field validator for component configs: `field` (e.g. a head count) must divide the earlier
    field `width` (e.g. d_model).  Use as `_heads = must_divide("n_heads", "d_model")` in the class body."""

    def check(cls, value: int, info: ValidationInfo) -> int:
        total = info.data.get(width)  # absent when `width` itself failed validation: that error is reported
        if total is not None and total % value:
            raise ValueError(f"{field}={value} must divide {width}={total}")
        return value

    return field_validator(field)(check)
