"""Nested component configs validated through their registry: one source of truth for what a name means.

A method config holds other components (a mask sampler, a predictor, probes, ...).  `Registered(REG)` is
the pydantic type of such a field: the input's `name` selects the config class registered in REG, which
validates the rest (unknown names fail with the registry's did-you-mean message; errors keep their path,
e.g. `method.mask.ratio`).  The field serializes as its concrete class, so RunSpec JSON round-trips and the
run_id hashes every parameter.  No Union is kept beside the registry: registering a component is enough.

    class JEPAConfig(ComponentConfig):
        mask: Registered(MASKS) = Field(default_factory=MultiBlockMaskConfig)
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, SerializeAsAny, ValidationError
from pydantic_core import PydanticCustomError

from harness.registry import ComponentConfig, Registry, RegistryError, did_you_mean


def Registered(registry: Registry) -> Any:  # noqa: N802  (used like a type)
    """The annotated pydantic type of a field holding one config of `registry` (module docstring)."""

    def validate(value: Any) -> ComponentConfig:
        if isinstance(value, ComponentConfig):
            value = value.model_dump()  # re-validated below: a config of another registry is refused
        if not isinstance(value, dict) or "name" not in value:
            raise ValueError(f"a {registry.kind} needs a 'name' (known: {', '.join(registry.names())})")
        try:
            entry = registry.get(str(value["name"]))
        except RegistryError as e:
            raise ValueError(str(e)) from None
        try:
            return entry.config.model_validate(value)
        except ValidationError as err:
            raise ValidationError.from_exception_data(err.title, [_detail(e, entry.config, value) for e in err.errors()]) from None

    return Annotated[SerializeAsAny[ComponentConfig], BeforeValidator(validate)]


def _detail(e: Any, config: type[ComponentConfig], value: dict) -> Any:
    """An error of the concrete config, re-raised with its location; an unknown key names that config's keys
    (the field's annotation is the base class, which knows only `name`)."""
    out = {"type": e["type"], "loc": e["loc"], "input": e["input"], **({"ctx": e["ctx"]} if "ctx" in e else {})}
    if e["type"] == "extra_forbidden" and len(e["loc"]) == 1:
        key, known = str(e["loc"][0]), list(config.model_fields)
        hint = did_you_mean(key, known)
        out["type"] = PydanticCustomError("unknown_key", f"unknown key '{key}'{hint}" + ("" if hint else f" (allowed: {', '.join(known)})"))
        out["input"] = value  # the mapping, not the misnamed key's value
    elif e["type"] == "unknown_key":  # rewritten by a nested Registered field already
        out["type"] = PydanticCustomError("unknown_key", e["msg"])
    return out
