"""`${path}` interpolation between the values of a suite, in OmegaConf's syntax and resolved by OmegaConf,
after `include` and the overrides and before validation:

    defaults:
      model: {name: transformer, d_model: 64, d_ff: 256}
      method: {name: supervised, eval_batch_size: "${defaults.training.batch_size}"}
      training: {batch_size: 64}

`${a.b}` is an absolute key of the suite document, `${.x}` a sibling, `${..x}` a key of the parent;
`"len_${defaults.task.max_digits}"` interpolates into a string.  Values are the suite's as written (a
grid axis does not change what `${defaults.model.d_model}` reads).  Resolvers (`${oc.env:...}` and the
like) are refused: a suite's values come from the suite.  A missing key, a cycle or a bad interpolation
is one line `file:line: key: ...` at the value that holds it.  So is a document whose interpolations would
expand past MAX_VALUES values or MAX_CHARS characters (references to references grow exponentially): the
size is counted on the document before OmegaConf resolves anything, and a key built from an interpolation
(`${a.${b}}`), whose size cannot be counted first, is refused."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import (
    GrammarParseError,
    InterpolationKeyError,
    InterpolationResolutionError,
    OmegaConfBaseException,
)
from omegaconf.grammar.gen.OmegaConfGrammarParser import OmegaConfGrammarParser
from omegaconf.grammar_parser import parse

from harness.spec.errors import SpecError
from harness.spec.yamlio import MAX_VALUES, KeyPath  # the alias-bomb cap bounds the interpolations too

MARK = "${"
MAX_CHARS = 1_000_000  # characters of the strings they build
_REF = re.compile(r"(?<!\\)\$\{([^${}]*)\}")  # an innermost, unescaped ${key.path}


def _strings(node: Any, path: KeyPath = ()) -> Iterator[tuple[KeyPath, str]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _strings(v, path + (i,))
    elif isinstance(node, str) and MARK in node:
        yield path, node


def _has_resolver(tree: Any) -> bool:
    if isinstance(tree, OmegaConfGrammarParser.InterpolationResolverContext):
        return True
    return any(_has_resolver(c) for c in getattr(tree, "children", None) or ())


def _first_line(e: Exception) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def resolve(data: dict[str, Any], locate) -> dict[str, Any]:
    """`data` with every interpolation replaced by its value (a new dict; `data` itself when there is none).
    `locate(key_path)` names where a value was written (for errors)."""
    found = list(_strings(data))
    if not found:
        return data
    for path, text in found:
        try:
            tree = parse(text)
        except GrammarParseError as e:
            raise SpecError(locate(path), f"bad interpolation {text!r}: {_first_line(e)}") from None
        if _has_resolver(tree):
            raise SpecError(locate(path), f"{text!r}: only ${{key.path}} interpolation is allowed in a suite, no resolvers")
    _check_size(data, found, locate)
    cfg = OmegaConf.create(data, flags={"allow_objects": True})
    out = copy.deepcopy(data)
    for path, text in found:
        node: Any = cfg
        try:
            for part in path[:-1]:
                node = node[part]
            value = node[path[-1]]  # OmegaConf resolves on access
            if isinstance(value, (DictConfig, ListConfig)):
                value = OmegaConf.to_container(value, resolve=True)
        except InterpolationKeyError as e:
            raise SpecError(locate(path), f"{text!r}: {_first_line(e)}") from None
        except InterpolationResolutionError as e:
            msg = _first_line(e)
            raise SpecError(locate(path), f"{text!r}: {'an interpolation cycle' if 'Recursive' in msg else msg}") from None
        except OmegaConfBaseException as e:
            raise SpecError(locate(path), f"{text!r}: {_first_line(e)}") from None
        target = out
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
    return out


def _target(data: Any, at: KeyPath, ref: str) -> KeyPath | None:
    """The path of the node `ref` names from the string at `at` (absolute `a.b[0]`, relative `.x` / `..x`), or None."""
    dots = len(ref) - len(ref.lstrip("."))
    path: KeyPath = at[:-dots] if dots else ()
    node = _at(data, path)
    for key in re.findall(r"[^.\[\]]+", ref):
        if isinstance(node, dict) and key in node:
            path, node = path + (key,), node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            path, node = path + (int(key),), node[int(key)]
        else:
            return None  # a missing key: OmegaConf names it
    return path


def _at(data: Any, path: KeyPath) -> Any:
    for part in path:
        data = data[part]
    return data


def _check_size(data: dict[str, Any], found: list[tuple[KeyPath, str]], locate) -> None:
    """Count what resolving `found` would build (values, characters) without building it."""
    sizes: dict[KeyPath, tuple[int, int]] = {}

    def size(at: KeyPath, open_: frozenset[KeyPath]) -> tuple[int, int]:
        if at in sizes:
            return sizes[at]
        if at in open_:  # a cycle: OmegaConf reports it
            return 1, 0
        node, inner = _at(data, at), open_ | {at}
        if isinstance(node, (dict, list)):
            keys = node.keys() if isinstance(node, dict) else range(len(node))
            parts = [size(at + (k,), inner) for k in keys]
            result = (1 + sum(p[0] for p in parts), sum(p[1] for p in parts))
        elif isinstance(node, str) and MARK in node:
            refs = _REF.findall(node)
            if len(refs) < node.count(MARK) - node.count("\\" + MARK):
                raise SpecError(locate(at), f"{node!r}: a key built from an interpolation is not allowed in a suite")
            parts = [size(t, inner) if t is not None else (1, 0) for t in (_target(data, at, r) for r in refs)]
            whole = len(refs) == 1 and node.strip() == "${" + refs[0] + "}"
            values = sum(p[0] for p in parts) if whole else 1
            result = (values, sum(p[1] for p in parts) + len(_REF.sub("", node)))
        else:
            result = (1, len(str(node)))
        sizes[at] = result
        return result

    values = chars = 0
    for path, text in found:
        v, c = size(path, frozenset())
        values, chars = values + v, chars + c
        if values > MAX_VALUES or chars > MAX_CHARS:
            raise SpecError(locate(path), f"{text!r}: the interpolations expand to more than "
                                          f"{MAX_VALUES:,} values or {MAX_CHARS:,} characters (references to references?)")
