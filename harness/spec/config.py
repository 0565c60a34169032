"""A resolved config tree -> RunConfig, each component's parameters validated by its registered config
class; errors are one-line SpecErrors at the suite line `locate` names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from harness.registry import REGISTRIES, RegistryError
from harness.spec.errors import Loc, SpecError
from harness.spec.load import validation_error
from harness.spec.models import COMPONENT_KEYS, RunConfig
from harness.spec.yamlio import KeyPath

Locate = Callable[[KeyPath], Loc]  # a config key path -> where the suite wrote it


def validate_config(raw: dict[str, Any], locate: Locate) -> RunConfig:
    """Nested dict -> RunConfig, component params validated by their registered config class."""
    typed = dict(raw)
    for key in COMPONENT_KEYS:
        comp = raw.get(key)
        if not isinstance(comp, dict) or "name" not in comp:
            raise SpecError(locate((key,)), f"'{key}' needs a 'name' of a registered {key}")
        try:
            entry = REGISTRIES[key].get(str(comp["name"]))
        except RegistryError as e:
            raise SpecError(locate((key, "name")), str(e)) from None
        try:
            typed[key] = entry.config.model_validate(comp)
        except ValidationError as err:
            raise validation_error(err, entry.config, locate, (key,)) from None
    try:
        return RunConfig.model_validate(typed)
    except ValidationError as err:
        raise validation_error(err, RunConfig, locate) from None
