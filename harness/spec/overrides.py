"""Command-line overrides in Hydra's grammar, parsed by hydra-core's own parser, applied to the suite
document before it is validated (so every error still names the override, or the file and line).

    key=value        set a key (the value is Hydra's: 1, 1e-3, true, null, abc, 'quoted', [1,2], {a: 1})
    +key=value       add a key the suite does not write (an error if it does)
    ++key=value      set a key whether or not the suite writes it
    ~key  ~key=value delete a key the suite writes (with a value: only if it has that value)
    key=a,b,c  key=choice(a,b)  key=range(1,4)  key=glob(rel_*)
                     a sweep: on `defaults.<path>` (or `stages.<s>.defaults.<path>`) it adds the grid axis
                     <path> (replacing an axis of that path), crossed with the suite's grid as Hydra's -m
                     would; on `grid.<axis>` it is that axis's values, on `seeds` the seeds
    key=interval(lo,hi)  key=tag(log,interval(lo,hi))  key=int(interval(lo,hi))
                     an Optuna search dimension (hydra-optuna-sweeper's convention: float, or int when both
                     bounds are ints or tagged `int`; log-scaled when tagged `log`): on `defaults.<path>` it
                     is added to the space of every tune block of the suite (or of stage <s>), on
                     `tune.<i>.space.<path>` to that block's

Keys address the suite file: `defaults.model.d_model`, `seeds`, `grid.model.pos_emb`, `ablations.x.y`,
`stages.probe.grid.method.probe.name`, `tune.0.space.optimizer.lr`.  Hydra's config groups (`a/b=c`) and
packages (`key@pkg=v`) belong to Hydra apps, not suites: an error here."""

from __future__ import annotations

import fnmatch
import math
import re
import typing
from dataclasses import dataclass
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, Glob, IntervalSweep, Override, OverrideType, RangeSweep
from hydra.errors import HydraException

from harness.registry import REGISTRIES
from harness.spec.errors import Loc, SpecError
from harness.spec.models import COMPONENT_KEYS, RunConfig
from harness.spec.tree import merge, switch_component
from harness.spec.yamlio import KeyPath, format_path

AXIS_SECTIONS = ("grid", "zip")  # their keys are dotted config paths, kept whole
MAX_SWEEP = 1_000_000  # values of one range(...) sweep, counted before it is listed (scheduler.max_runs caps the runs later)
DOTTED_SECTIONS = ("grid", "zip", "set", "space")  # ... and these, below the suite's top level (when.0.set, tune.0.space)
_PARSER: list[OverridesParser] = []  # made once: building Hydra's ANTLR parser takes a few ms


@dataclass(frozen=True)
class Edit:
    """One override, parsed: what to do (`set`, `add`, `force`, `delete`, `axis`, `search`) at which key
    path of the suite document, with which value (a list for an axis, a tune param dict for a search)."""

    text: str
    op: str
    path: KeyPath
    value: Any = None
    check: bool = False  # delete: only if the key holds `value`

    @property
    def where(self) -> Loc:
        return Loc("<override>", 0, self.text)


def _parser() -> OverridesParser:
    if not _PARSER:
        _PARSER.append(OverridesParser.create())
    return _PARSER[0]


def key_path(key: str, where: Loc) -> KeyPath:
    """A dotted override key -> the key path in the suite document (axis names and tune space paths kept whole)."""
    if "/" in key or not key:
        raise SpecError(where, f"'{key}' is a Hydra config group: a suite override names a key of the suite file (e.g. defaults.model.d_model)")
    parts = key.split(".")
    if not all(parts):
        raise SpecError(where, f"bad key path {key!r}")
    if parts[0] == "include":
        raise SpecError(where, "'include' is read from the suite file; it cannot be overridden")
    for j, part in enumerate(parts[:-1]):  # grid.<axis>, when.0.set.<path>, tune.0.space.<path>: dotted config paths
        if part in DOTTED_SECTIONS and j > 0 or part in AXIS_SECTIONS:
            return (*(_int(p) for p in parts[: j + 1]), ".".join(parts[j + 1:]))
    return tuple(_int(p) for p in parts)


def _int(part: str) -> Any:
    return int(part) if re.fullmatch("[0-9]+", part) else part


def parse(texts: list[str]) -> list[Edit]:
    """Each override through Hydra's parser; a grammar error is one line naming the override."""
    return [_edit(text) for text in texts]


def _edit(text: str) -> Edit:
    where = Loc("<override>", 0, text)
    try:
        o: Override = _parser().parse_override(text)
    except HydraException as e:
        raise SpecError(where, f"not an override in Hydra's grammar ({' '.join(str(e).split())}); expected key=value, "
                               "+key=value, ++key=value, ~key, or a sweep such as key=1,2 / choice(a,b) / range(1,4) / interval(0,1)") from None
    if o.package is not None:
        raise SpecError(where, f"'@{o.package}' is a Hydra package: a suite override names a key of the suite file")
    path = key_path(o.key_or_group, where)
    if o.type == OverrideType.DEL:
        return Edit(text, "delete", path, o.value() if o.value_type is not None else None, o.value_type is not None)
    op = {OverrideType.CHANGE: "set", OverrideType.ADD: "add", OverrideType.FORCE_ADD: "force"}[o.type]
    value = o.value()
    if isinstance(value, IntervalSweep):
        return _search(text, path, value, where)
    if isinstance(value, (ChoiceSweep, RangeSweep, Glob)):
        return _axis(text, path, value, o, where)
    return Edit(text, op, path, value)


def _search(text: str, path: KeyPath, value: IntervalSweep, where: Loc) -> Edit:
    """interval(...) -> a tune param, hydra-optuna-sweeper's way (module docstring)."""
    is_int = (isinstance(value.start, int) and isinstance(value.end, int)) or "int" in value.tags
    unknown = sorted(set(value.tags) - {"log", "int"})
    if unknown:
        raise SpecError(where, f"unknown interval tag(s) {', '.join(unknown)}: use tag(log, interval(lo,hi)) or int(interval(lo,hi))")
    param = {"type": "int" if is_int else "float", "low": int(value.start) if is_int else float(value.start),
             "high": int(value.end) if is_int else float(value.end), "log": "log" in value.tags}
    if path[:1] == ("tune",) and len(path) == 4 and path[2] == "space":
        return Edit(text, "set", path, param)
    head = _defaults_head(path)
    if head is None:
        raise SpecError(where, "interval() adds an Optuna search dimension: write it on defaults.<config path> "
                               "(every tune block of the suite) or tune.<i>.space.<config path>")
    return Edit(text, "search", (*head, "tune", ".".join(str(p) for p in path[len(head) + 1:])), param)


def _defaults_head(path: KeyPath) -> tuple[Any, ...] | None:
    """() for `defaults.<path>`, ("stages", s) for `stages.<s>.defaults.<path>`, else None."""
    if len(path) > 1 and path[0] == "defaults":
        return ()
    if len(path) > 3 and path[0] == "stages" and path[2] == "defaults":
        return ("stages", path[1])
    return None


def _range_len(r: RangeSweep) -> int:
    return max(0, math.ceil((r.stop - r.start) / r.step))


def _axis(text: str, path: KeyPath, value: Any, o: Override, where: Loc) -> Edit:
    """A sweep -> the values of a grid axis (module docstring)."""
    head = _defaults_head(path)
    if isinstance(value, RangeSweep) and value.step and _range_len(value) > MAX_SWEEP:
        raise SpecError(where, f"the sweep has {_range_len(value):,} values; a sweep holds at most {MAX_SWEEP:,}")
    values = value if isinstance(value, Glob) else list(o.sweep_iterator())  # a glob is resolved against the suite
    if head is not None:
        return Edit(text, "axis", (*head, "grid", ".".join(str(p) for p in path[len(head) + 1:])), values)
    if isinstance(value, Glob):
        raise SpecError(where, "glob() picks among a key's choices: write it on defaults.<config path>")
    if path == ("seeds",) or (len(path) >= 2 and path[-2] in AXIS_SECTIONS):
        return Edit(text, "set", path, values)
    raise SpecError(where, "a sweep adds a grid axis: write it on defaults.<config path> (or grid.<axis>, seeds)")


def glob_values(value: Glob, data: dict[str, Any], path: KeyPath, where: Loc) -> list[Any]:
    """glob(...) over the choices of the axis at `path` (.., "grid", <config path>): the registered names of a
    component (`model.name`), or the listed values (a Literal type) of a parameter."""
    choices = _choices(data, path[:-2], path[-1])
    if choices is None:
        raise SpecError(where, f"glob() needs a key with a fixed set of choices: a component's name (defaults.model.name) "
                               f"or a parameter with listed values; '{path[-1]}' has none")
    return [c for c in choices if any(fnmatch.fnmatchcase(str(c), p) for p in value.include)
            and not any(fnmatch.fnmatchcase(str(c), p) for p in value.exclude)]


def _choices(data: dict[str, Any], head: KeyPath, config_path: str) -> list[Any] | None:

    parts = config_path.split(".")
    if len(parts) != 2:
        return None
    if parts[0] in COMPONENT_KEYS:
        registry = REGISTRIES[parts[0]]
        if parts[1] == "name":
            return registry.names()
        node: Any = data
        for p in (*head, "defaults", parts[0], "name"):
            node = node.get(p) if isinstance(node, dict) else None
        if not isinstance(node, str) or node not in registry:
            return None
        fields = registry.get(node).config.model_fields
    else:
        section = RunConfig.model_fields.get(parts[0])
        fields = getattr(section.annotation, "model_fields", {}) if section is not None else {}
    return literal_choices(fields[parts[1]].annotation) if parts[1] in fields else None


def literal_choices(annotation: Any) -> list[Any] | None:
    """The values of a Literal[...] type (through Optional), else None."""
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return literal_choices(args[0]) if len(args) == 1 else None


# ---------------------------------------------------------------- applying them to the suite document
def apply(data: dict[str, Any], loc: Any, edits: list[Edit], dropped: list[str]) -> None:
    """Apply the edits in order; `loc` (a load.Locator) learns that the keys they wrote come from the
    override; parameters dropped by a component switch are appended to `dropped`."""
    for e in edits:
        if e.op == "delete":
            _delete(data, loc, e)
        elif e.op == "axis":
            _axis_into(data, loc, e)
        elif e.op == "search":
            _search_into(data, loc, e)
        else:
            if e.op == "add" and _lookup(data, e.path) is not _MISSING:
                key = ".".join(str(p) for p in e.path)
                raise SpecError(e.where, f"{key} is already set in the suite: +key adds a new key; use {key}=... or ++{key}=...")
            _set(data, loc, e.path, e.value, e, dropped)


_MISSING = object()


def _lookup(data: Any, path: KeyPath) -> Any:
    node = data
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return _MISSING
    return node


def _index(node: list[Any], part: Any, at: KeyPath, where: Loc) -> int:
    if isinstance(part, int) and part < len(node):
        return part
    raise SpecError(where, f"{format_path(at)} is a list of {len(node)}: {part!r} is not an index in it")


def _written_by(loc: Any, path: KeyPath, e: Edit) -> None:
    loc.locs = {p: l for p, l in loc.locs.items() if p[: len(path)] != path}
    loc.locs[path] = e.where


def _set(data: dict[str, Any], loc: Any, path: KeyPath, value: Any, e: Edit, dropped: list[str]) -> None:

    node: Any = data
    for i, part in enumerate(path[:-1]):
        if isinstance(node, list):
            node = node[_index(node, part, path[:i], e.where)]
            continue
        if not isinstance(node, dict):
            raise SpecError(e.where, f"{format_path(path[: i + 1])} is not a mapping")
        if not isinstance(node.get(part), (dict, list)):
            node[part] = {}
            loc.locs[path[: i + 1]] = e.where  # made by the override: its errors name the override
        node = node[part]
    last, at = path[-1], ".".join(str(p) for p in path)
    if isinstance(node, list):
        node[_index(node, last, path[:-1], e.where)] = merge(None, value)
    elif not isinstance(node, dict):
        raise SpecError(e.where, "cannot set a key inside a scalar")
    elif last == "name" and len(path) >= 2 and path[-2] in COMPONENT_KEYS:  # defaults.model.name=lstm
        switch_component(node, str(path[-2]), value, dropped, at.rpartition(".")[0])
    else:
        node[last] = merge(node.get(last), value, str(last), dropped, at)
    _written_by(loc, path, e)


def _delete(data: dict[str, Any], loc: Any, e: Edit) -> None:
    key = ".".join(str(p) for p in e.path)
    parent = _lookup(data, e.path[:-1])
    current = _lookup(data, e.path)
    if current is _MISSING:
        raise SpecError(e.where, f"~{key}: the suite does not set '{key}'")
    if e.check and current != e.value:
        raise SpecError(e.where, f"~{key}={e.value!r}: the suite sets it to {current!r}")
    if isinstance(parent, list):
        parent.pop(e.path[-1])
    else:
        del parent[e.path[-1]]
    loc.locs = {p: l for p, l in loc.locs.items() if p[: len(e.path)] != e.path}


def _axis_into(data: dict[str, Any], loc: Any, e: Edit) -> None:
    head, axis = e.path[:-2], e.path[-1]
    values = glob_values(e.value, data, e.path, e.where) if isinstance(e.value, Glob) else e.value
    if not values:
        raise SpecError(e.where, "the sweep has no values")
    owner = _lookup(data, head) if head else data
    if not isinstance(owner, dict):
        raise SpecError(e.where, f"{format_path(head)} is not a mapping")
    zipped = owner.get("zip")
    if isinstance(zipped, dict) and axis in zipped:
        raise SpecError(e.where, f"'{axis}' is a zip axis of the suite: override {format_path((*head, 'zip'))}.{axis}=[...] instead")
    grid = owner.get("grid")
    if not isinstance(grid, dict):
        owner["grid"] = grid = {}
        loc.locs[(*head, "grid")] = e.where
    grid[axis] = list(values)
    _written_by(loc, e.path, e)


def _search_into(data: dict[str, Any], loc: Any, e: Edit) -> None:
    head, path = e.path[:-2], e.path[-1]
    owner = _lookup(data, head) if head else data
    blocks = owner.get("tune") if isinstance(owner, dict) else None
    if not isinstance(blocks, list) or not blocks:
        where = f"stage '{head[1]}'" if head else "the suite"
        raise SpecError(e.where, f"interval() adds a search dimension to the tune blocks of {where}, which declares none "
                                 "(add a tune: block, or sweep a grid axis with key=a,b)")
    for i, block in enumerate(blocks):
        if isinstance(block, dict):
            space = block.get("space")
            if not isinstance(space, dict):
                block["space"] = space = {}
            space[path] = dict(e.value)
            _written_by(loc, (*head, "tune", i, "space", path), e)
