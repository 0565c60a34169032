"""Small pure functions on nested dicts addressed by dotted paths (`model.pos_emb`).

Switching a component's `name` (task, model or method) keeps the parameters the new component also has
(its registered config class has a field of that name, e.g. d_model, n_layers) and drops the others:
they belonged to the previous component.  Every function that can switch a name takes an optional
`dropped` list and appends the dotted path of each parameter it dropped to it."""

from __future__ import annotations

import copy
from typing import Any

from harness.registry import REGISTRIES
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


def component_fields(key: str, name: Any) -> set[str] | None:
    """The parameter names of component `key` (task / model / method) registered as `name`; None when no
    such component is registered (validation reports the name, with did-you-mean)."""
    registry = REGISTRIES.get(key)
    if registry is None or not isinstance(name, str) or name not in registry:
        return None
    return {f.alias or n for n, f in registry.get(name).config.model_fields.items()}


def switch_component(node: dict[str, Any], key: str, name: Any, dropped: list[str] | None = None, at: str = "") -> None:
    """Set component `key`'s name to `name` in place: the parameters `name` also has stay, the rest are
    removed (their dotted paths, under `at`, appended to `dropped`)."""
    keep = component_fields(key, name)
    if node.get("name", name) != name and keep is not None:
        gone = [k for k in node if k != "name" and k not in keep]
        for k in gone:
            del node[k]
        if dropped is not None:
            dropped += [f"{at or key}.{k}" for k in gone]
    node["name"] = copy.deepcopy(name)


def set_path(tree: dict[str, Any], path: str, value: Any, dropped: list[str] | None = None) -> None:
    """Set `path` in place (a component's `name`: see the module docstring)."""
    parts = split(path)
    node = tree
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    last = parts[-1]
    if len(parts) == 2 and parts[0] in COMPONENT_KEYS and last == "name":
        switch_component(node, parts[0], value, dropped)
    else:
        node[last] = copy.deepcopy(value)


def merge(base: Any, over: Any, key: str = "", dropped: list[str] | None = None, at: str = "") -> Any:
    """Deep merge `over` onto `base` (new object).  Lists and scalars replace; a component dict naming a
    different component keeps only the base parameters the new one also has (module docstring).  `at`: the
    dotted path of `base` (for `dropped`)."""
    if not (isinstance(base, dict) and isinstance(over, dict)):
        return copy.deepcopy(over)
    out = copy.deepcopy(base)
    if key in COMPONENT_KEYS and "name" in over:
        switch_component(out, key, over["name"], dropped, at or key)
    for k, v in over.items():
        out[k] = merge(out[k], v, str(k), dropped, f"{at}.{k}" if at else str(k)) if k in out else copy.deepcopy(v)
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


def value_matches(have: Any, want: Any) -> bool:
    """A `where:` value: equal to the run's value, or (a list) any of its items; a list axis value is written
    as a list ({task.train_len: [5, 20]}), several of them as a list of lists.  (Reports, validation and
    stages select runs with it.)"""
    return have == want or (isinstance(want, list) and have in want)


def run_matches(run: Any, where: dict[str, Any]) -> bool:
    """`where` on a RunSpec: config paths (a list value means any of), `ablation` and `stage`."""
    tree = None
    for path, want in where.items():
        if path in ("ablation", "stage"):
            have = getattr(run, path)
        else:
            tree = tree if tree is not None else run.config.model_dump(mode="json")
            have = get_path(tree, path, None)
        if not value_matches(have, want):
            return False
    return True
