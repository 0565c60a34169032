"""Small pure functions on nested dicts addressed by dotted paths (`model.pos_emb`)."""

from __future__ import annotations

import copy
from typing import Any

from harness.spec.models import COMPONENT_KEYS

MISSING = object()


def split(path: str) -> list[str]:
    return [p for p in path.split(".")]


def get_path(tree: dict[str, Any], path: str, default: Any = MISSING) -> Any:
    node: Any = tree
    for part in split(path):
        if not isinstance(node, dict) or part not in node:
            if default is MISSING:
                raise KeyError(path)
            return default
        node = node[part]
    return node


def set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    """Set `path` in place.  Setting a component's `name` to a new value drops that component's
    other parameters: they belonged to the previous component."""
    parts = split(path)
    node = tree
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    last = parts[-1]
    if len(parts) == 2 and parts[0] in COMPONENT_KEYS and last == "name" and node.get("name", value) != value:
        node.clear()
    node[last] = copy.deepcopy(value)


def merge(base: Any, over: Any, key: str = "") -> Any:
    """Deep merge `over` onto `base` (new object).  Lists and scalars replace; a component dict
    naming a different component replaces the base one whole."""
    if not (isinstance(base, dict) and isinstance(over, dict)):
        return copy.deepcopy(over)
    if key in COMPONENT_KEYS and "name" in over and base.get("name", over["name"]) != over["name"]:
        return copy.deepcopy(over)
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(base[k], v, k) if k in base else copy.deepcopy(v)
    return out


def matches(tree: dict[str, Any], cond: dict[str, Any]) -> bool:
    """True when every `path: value` of `cond` holds in `tree` (a list value means any of).
    A path not written in the tree compares as null."""
    for path, want in cond.items():
        have = get_path(tree, path, None)
        if isinstance(want, list):
            if have not in want:
                return False
        elif have != want:
            return False
    return True


def run_matches(run: Any, where: dict[str, Any]) -> bool:
    """`where` on a RunSpec: config paths (a list value means any of), `ablation` and `stage`."""
    tree = None
    for path, want in where.items():
        if path in ("ablation", "stage"):
            have = getattr(run, path)
        else:
            tree = tree if tree is not None else run.config.model_dump(mode="json")
            have = get_path(tree, path, None)
        if have not in (want if isinstance(want, list) else [want]):
            return False
    return True
