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
is one line `file:line: key: ...` at the value that holds it."""

from __future__ import annotations

import copy
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
from harness.spec.yamlio import KeyPath

MARK = "${"


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
