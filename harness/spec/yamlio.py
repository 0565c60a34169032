"""Safe YAML loading that remembers the line of every key, and rejects duplicate keys.

`load_yaml(path)` returns (data, lines) where `lines[("grid", "model.pos_emb", 2)]` is the
1-based line of that element.  Only the safe loader is used, and only plain YAML is accepted:
no tags on mappings or lists (`!!python/...`, `!!set`, ...), no recursive aliases, no alias
"bombs" that expand to more than MAX_VALUES values.  Every failure is a SpecError with a line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.spec.errors import Loc, SpecError

KeyPath = tuple[Any, ...]
MAX_VALUES = 50_000  # values in the document once aliases are expanded
MAX_DEPTH = 64  # nesting of mappings and lists
MAX_BYTES = 4 * 2**20  # a suite file (the largest in suites/ is ~20 KB)
PLAIN_TAGS = {"map": "tag:yaml.org,2002:map", "seq": "tag:yaml.org,2002:seq"}


def format_path(path: KeyPath) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


class _Walker:
    """Turns the composed node graph into plain dicts/lists/scalars, recording each key's line."""

    def __init__(self, loader: yaml.SafeLoader, file: str) -> None:
        self.loader, self.file = loader, file
        self.lines: dict[KeyPath, int] = {}
        self.count = 0
        self.open: set[int] = set()  # ids of the mapping/list nodes being walked (alias cycles)

    def error(self, node: yaml.Node, path: KeyPath, message: str) -> SpecError:
        return SpecError(Loc(self.file, node.start_mark.line + 1, format_path(path)), message)

    def walk(self, node: yaml.Node, path: KeyPath) -> Any:
        self.lines[path] = node.start_mark.line + 1
        self.count += 1
        if self.count > MAX_VALUES:
            raise self.error(node, path, f"the document expands to more than {MAX_VALUES} values (aliases?)")
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        kind = "map" if isinstance(node, yaml.MappingNode) else "seq"
        if node.tag != PLAIN_TAGS[kind]:
            raise self.error(node, path, f"tag '{node.tag}' is not allowed: plain YAML only")
        if id(node) in self.open:
            raise self.error(node, path, "an alias refers to a node that contains it (recursive alias)")
        if len(self.open) >= MAX_DEPTH:
            raise self.error(node, path, f"nested more than {MAX_DEPTH} levels deep")
        self.open.add(id(node))
        out = self.mapping(node, path) if kind == "map" else [self.walk(v, path + (i,)) for i, v in enumerate(node.value)]
        self.open.discard(id(node))
        return out

    def mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node, path) if isinstance(key_node, yaml.ScalarNode) else None
            if key is None or not isinstance(key, (str, int, float, bool)):
                raise self.error(key_node, path, "mapping keys must be strings or numbers")
            if key in out:
                raise self.error(key_node, path + (key,), f"duplicate key '{key}'")
            out[key] = self.walk(value_node, path + (key,))
            self.lines[path + (key,)] = key_node.start_mark.line + 1
        return out

    def scalar(self, node: yaml.ScalarNode, path: KeyPath) -> Any:
        """A scalar by the safe constructor; a value its tag cannot parse (`!!int abc`, a date
        2020-02-30, `!!bool maybe`) is an error at its line."""
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, KeyError):
            short = node.tag.removeprefix("tag:yaml.org,2002:")
            raise self.error(node, path, f"invalid {short} value {node.value!r}") from None


def parse_yaml(text: str, file: str) -> tuple[Any, dict[KeyPath, int]]:
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # checks every character: a ReaderError may come from here
        node = loader.get_single_node()
        walker = _Walker(loader, file)
        data = {} if node is None else walker.walk(node, ())
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 1
        raise SpecError(Loc(file, line, ""), f"invalid YAML: {e.problem or e.context}") from None
    except yaml.reader.ReaderError as e:  # a character YAML does not allow (control characters, NUL)
        line = text.count("\n", 0, e.position) + 1
        char = chr(e.character) if isinstance(e.character, int) else e.character
        raise SpecError(Loc(file, line, ""), f"invalid YAML: character {char!r} is not allowed") from None
    except RecursionError:  # the composer recurses once per nesting level, before the walker can count
        raise SpecError(Loc(file, loader.line + 1, ""), "invalid YAML: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, walker.lines


def load_yaml(path: Path) -> tuple[Any, dict[KeyPath, int]]:
    try:
        if path.stat().st_size > MAX_BYTES:  # before it is read: a multi-GB file is not loaded to be refused
            raise SpecError(Loc(str(path), 0, ""), f"the file has {path.stat().st_size:,} bytes; a suite holds at most {MAX_BYTES:,}")
        raw = path.read_bytes()
    except OSError as e:
        raise SpecError(Loc(str(path), 0, ""), f"cannot read file: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise SpecError(Loc(str(path), line, ""), f"not UTF-8 text: byte {raw[e.start]:#04x} at offset {e.start}") from None
    return parse_yaml(text, str(path))
