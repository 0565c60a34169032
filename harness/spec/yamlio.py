"""Safe YAML loading that remembers the line of every key, and rejects duplicate keys.

`load_yaml(path)` returns (data, lines) where `lines[("grid", "model.pos_emb", 2)]` is the
1-based line of that element.  Only the safe loader is used: no Python object tags.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.spec.errors import Loc, SpecError

KeyPath = tuple[Any, ...]


def format_path(path: KeyPath) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _walk(loader: yaml.SafeLoader, node: yaml.Node, path: KeyPath, lines: dict, file: str) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)):
                raise SpecError(Loc(file, key_node.start_mark.line + 1, format_path(path)), "mapping keys must be scalars")
            if key in out:
                kp = format_path(path + (key,))
                raise SpecError(Loc(file, key_node.start_mark.line + 1, kp), f"duplicate key '{key}'")
            out[key] = _walk(loader, value_node, path + (key,), lines, file)
            lines[path + (key,)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(loader, v, path + (i,), lines, file) for i, v in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def parse_yaml(text: str, file: str) -> tuple[Any, dict[KeyPath, int]]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[KeyPath, int] = {}
        data = {} if node is None else _walk(loader, node, (), lines, file)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 0
        raise SpecError(Loc(file, line, ""), f"invalid YAML: {e.problem or e.context}") from None
    finally:
        loader.dispose()
    return data, lines


def load_yaml(path: Path) -> tuple[Any, dict[KeyPath, int]]:
    try:
        text = path.read_text()
    except OSError as e:
        raise SpecError(Loc(str(path), 0, ""), f"cannot read file: {e.strerror}") from None
    return parse_yaml(text, str(path))
