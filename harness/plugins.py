"""Importing the component packages fills the registries (tasks, models, methods)."""

from __future__ import annotations

import importlib
import os

DEFAULT = "baselines"


def load_plugins() -> None:
    """Import every package named in HARNESS_PLUGINS (comma-separated; default `baselines`)."""
    for name in filter(None, os.environ.get("HARNESS_PLUGINS", DEFAULT).split(",")):
        importlib.import_module(name.strip())
