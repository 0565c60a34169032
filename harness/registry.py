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
    """Base of every component config: a registered `name` plus typed parameters (finite numbers only)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
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


ALL: dict[str, Registry] = {}  # kind -> its registry: every registry made (the harness's, the plugins'), for `harness list`


@dataclass(frozen=True)
class Field_:
    """One parameter of a component's config, as `harness describe` shows it."""

    name: str
    type: str
    default: str
    description: str


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    return text or str(annotation).replace("typing.", "").replace("baselines.", "").replace("harness.", "")


def _shown(value: Any) -> str:
    """A default as a suite would write it: a config as its fields (JSON), a list of them as a list."""
    import json

    def plain(v: Any) -> Any:
        return v.model_dump(mode="json") if isinstance(v, BaseModel) else [plain(x) for x in v] if isinstance(v, list) else v

    return json.dumps(plain(value)) if isinstance(value, (BaseModel, list)) else repr(value)


def _field_comments(config: type) -> dict[str, str]:
    """A config's fields documented by a trailing comment (`steps: int = 300  # what it is`), over its class and
    its bases: what `harness describe` shows where a field has no description."""
    import inspect
    import re

    out: dict[str, str] = {}
    for cls in reversed(config.__mro__):
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            continue
        for m in re.finditer(r"^\s+(\w+)\s*:[^#\n]*#\s*(.+)$", source, re.M):
            out[m.group(1)] = m.group(2).strip()
    return out


class Registry(Generic[F]):
    """Maps names to (config class, builder).  `kind` is used in error messages.  A registry with
    `declares_metrics` (METHODS) takes from each component the metric names it logs for a config:
    `metrics(cfg, task) -> names` (the evaluation's and the training step's, these as `train/<name>`), which
    `harness validate` checks every metric a report, claim or tune objective names against."""

    def __init__(self, kind: str, declares_metrics: bool = False) -> None:
        self.kind = kind
        self.declares_metrics = declares_metrics
        self._entries: dict[str, Entry[F]] = {}
        ALL.setdefault(kind, self)

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

    def summary(self, name: str) -> str:
        """The first line of the component's own config docstring, else of its builder's ("" if neither)."""
        e = self.get(name)
        doc = e.config.__dict__.get("__doc__") or e.build.__doc__ or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""

    def fields(self, name: str) -> list[Field_]:
        """The component's parameters: name, type, default, description (its pydantic config's fields)."""
        from pydantic_core import PydanticUndefined

        config = self.get(name).config
        comments = _field_comments(config)
        out = []
        for n, f in config.model_fields.items():
            if n == "name":
                continue
            default = "required" if f.default is PydanticUndefined and f.default_factory is None else \
                _shown(f.default_factory() if f.default_factory is not None else f.default)
            out.append(Field_(n, _type_name(f.annotation), default, f.description or comments.get(n, "")))
        return out

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
