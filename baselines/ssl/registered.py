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

from pydantic import BeforeValidator, SerializeAsAny

from harness.registry import ComponentConfig, Registry, RegistryError


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
        return entry.config.model_validate(value)

    return Annotated[SerializeAsAny[ComponentConfig], BeforeValidator(validate)]
