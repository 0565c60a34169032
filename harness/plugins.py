"""Importing the component packages fills the registries (tasks, models, methods)."""

from __future__ import annotations

import importlib
import os

DEFAULT = "baselines"


def plugin_names() -> list[str]:
    """`baselines`, then the packages named in $HARNESS_PLUGINS (comma-separated): they add to the built-in
    components, they do not replace them."""
    extra = [name.strip() for name in os.environ.get("HARNESS_PLUGINS", "").split(",") if name.strip()]
    return list(dict.fromkeys([DEFAULT, *extra]))


def load_plugins() -> None:
    """Import `baselines` and every package named in HARNESS_PLUGINS."""
    for name in plugin_names():
        importlib.import_module(name)


def warm_imports() -> None:
    """Import what each plugin lists in its WARM_IMPORTS (modules its components import only when they run):
    a warm worker does it once before forking, so that no run pays for it and the orchestrator never does."""
    load_plugins()
    for name in plugin_names():
        for module in getattr(importlib.import_module(name), "WARM_IMPORTS", ()):
            importlib.import_module(module)
