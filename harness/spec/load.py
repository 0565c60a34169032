"""suite.yaml (+ include + command-line overrides) -> validated SuiteSpec, with the source line
of every key kept so that any later error can name file:line and key path."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from harness.plugins import load_plugins
from harness.registry import did_you_mean
from harness.spec import interpolate
from harness.spec import overrides as hydra_overrides
from harness.spec import roots as roots_
from harness.spec.errors import Loc, SpecError
from harness.spec.models import CONFIG_KEYS, GridSpec, Label, RunConfig, SuiteSpec
from harness.spec.profiles import apply_profile
from harness.spec.tree import merge
from harness.spec.yamlio import KeyPath, format_path, load_yaml

UNIONS = (typing.Union, types.UnionType, typing.Annotated)
DIFF_SECTIONS = ("defaults",)  # nested config dicts in which dotted keys are expanded


@dataclass
class Locator:
    """Maps key paths of the (merged) suite document to where they were written."""

    locs: dict[KeyPath, Loc] = field(default_factory=dict)
    root: Loc = Loc("<suite>", 0, "")

    def find(self, path: KeyPath) -> Loc:
        for n in range(len(path), 0, -1):
            if path[:n] in self.locs:
                return Loc(self.locs[path[:n]].file, self.locs[path[:n]].line, format_path(path))
        return Loc(self.root.file, self.root.line, format_path(path))


@dataclass
class LoadedSuite:
    spec: SuiteSpec
    path: Path
    locator: Locator
    dropped: list[str] = field(default_factory=list)  # suite keys dropped by a component switch (include, overrides)


def _leaves(prefix: tuple[str, ...], v: Any) -> list[tuple[str, ...]]:
    """The dotted paths a key writes: `model.pos_emb: x` -> [(model, pos_emb)]; a mapping, each of its leaves."""
    if isinstance(v, dict) and v:
        return [leaf for k, w in v.items() for leaf in _leaves((*prefix, *str(k).split(".")), w)]
    return [prefix]


def _undot(d: Any, path: KeyPath, loc: Locator) -> Any:
    """Expand `{"model.pos_emb": x}` into `{"model": {"pos_emb": x}}`, moving line info along."""
    if not isinstance(d, dict):
        return d
    out: dict[str, Any] = {}
    written: dict[tuple[str, ...], Any] = {}  # leaf path -> the key that wrote it
    for k, v in d.items():
        parts = str(k).split(".")
        src = loc.locs.get(path + (k,))
        for leaf in _leaves(tuple(parts), v):
            other = next((w for p, w in written.items() if p[:len(leaf)] == leaf or leaf[:len(p)] == p), None)
            if other is not None:
                raise SpecError(src or loc.root, f"{'.'.join(leaf)} is written twice here (by {other!r} and {k!r}): keep one")
            written[leaf] = k
        node = out
        for i, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if src and path + tuple(parts[: i + 1]) not in loc.locs:
                loc.locs[path + tuple(parts[: i + 1])] = src
        node[parts[-1]] = merge(node.get(parts[-1], {}), _undot(v, path + (k,), loc)) if isinstance(v, dict) else v
        if src:
            loc.locs[path + tuple(parts)] = src
    return out


def _normalize(data: dict[str, Any], loc: Locator, at: KeyPath = ()) -> dict[str, Any]:
    """Dotted keys expanded in `defaults` and in each ablation, of the suite and of each of its stages."""
    data = dict(data)
    if isinstance(data.get("defaults"), dict):
        data["defaults"] = _undot(data["defaults"], at + ("defaults",), loc)
    if isinstance(data.get("ablations"), dict):
        data["ablations"] = {
            k: _undot(v, at + ("ablations", k), loc) if isinstance(v, dict) else v for k, v in data["ablations"].items()
        }
    if not at and isinstance(data.get("stages"), dict):
        data["stages"] = {k: _normalize(v, loc, ("stages", k)) if isinstance(v, dict) else v for k, v in data["stages"].items()}
    return data


MAX_INCLUDES = 16  # files in one include chain (the shipped suites use 2)


def _read(path: Path, seen: tuple[Path, ...], dropped: list[str], roots: tuple[Path, ...]) -> tuple[dict[str, Any], Locator]:
    data, lines = load_yaml(path)
    loc = Locator({p: Loc(str(path), n, format_path(p)) for p, n in lines.items()}, Loc(str(path), 1, ""))
    if not isinstance(data, dict):
        raise SpecError(Loc(str(path), 1, ""), "a suite must be a YAML mapping")
    data = _normalize(data, loc)
    inc = data.get("include")
    if inc is None:
        return data, loc
    if not isinstance(inc, str):
        raise SpecError(loc.find(("include",)), "expected a file name (string)")
    try:
        base_path = (path.parent / inc).resolve()
        found = base_path.is_file()  # a directory is no suite either
        why = roots_.outside(base_path, roots)
    except (OSError, ValueError) as e:  # a NUL byte or an over-long name
        raise SpecError(loc.find(("include",)), f"bad include file name {inc!r}: {getattr(e, 'strerror', None) or e}") from None
    if why:  # before existence: a suite learns nothing about files outside its roots
        raise SpecError(loc.find(("include",)), f"{inc!r} {why}")
    if base_path in seen:
        raise SpecError(loc.find(("include",)), f"include cycle through {base_path.name}")
    if len(seen) >= MAX_INCLUDES:
        raise SpecError(loc.find(("include",)), f"the include chain is deeper than {MAX_INCLUDES} files")
    if not found:
        raise SpecError(loc.find(("include",)), f"included file not found: {inc}")
    base, base_loc = _read(base_path, seen + (base_path,), dropped, roots)
    merged = merge(base, {k: v for k, v in data.items() if k != "include"}, dropped=dropped)
    merged["include"] = inc
    return merged, Locator({**base_loc.locs, **loc.locs}, loc.root)


def _field_names(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the pydantic model found at `loc` inside `model` (for did-you-mean)."""
    tp: Any = model
    for part in loc:
        while typing.get_origin(tp) in UNIONS:
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = args[0]
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            f = tp.model_fields.get(part) or next((f for f in tp.model_fields.values() if f.alias == part), None)
            if f is None:
                return []
            tp = f.annotation
        elif typing.get_origin(tp) in (list, dict, tuple):
            tp = typing.get_args(tp)[-1]
        else:
            return []
    while typing.get_origin(tp) in UNIONS:
        tp = [a for a in typing.get_args(tp) if a is not type(None)][0]
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [f.alias or n for n, f in tp.model_fields.items()]
    return []


def validation_error(err: ValidationError, model: type[BaseModel], locate, prefix: KeyPath = ()) -> SpecError:
    """First pydantic error -> one-line SpecError (did-you-mean for unknown keys)."""
    e = err.errors()[0]
    path = prefix + tuple(e["loc"])
    if e["type"] == "extra_forbidden":
        known = _field_names(model, tuple(e["loc"][:-1]))
        hint = did_you_mean(str(e["loc"][-1]), known) or _under_defaults(path, e.get("input"), model)
        msg = f"unknown key '{e['loc'][-1]}'{hint}" + (f" (allowed: {', '.join(known)})" if known and not hint else "")
    else:
        msg = e["msg"].removeprefix("Value error, ")
        shown = repr(e.get("input"))
        if e["type"] != "missing" and not isinstance(e.get("input"), (dict, list)) and shown not in msg:
            msg += f", got {shown}"
    return SpecError(locate(path), msg)


def _under_defaults(path: KeyPath, value: Any, model: type[BaseModel]) -> str:
    """A run-config key written at a suite's top level (Hydra's habit: `training.steps=80`): the suite path it
    means, `defaults.training.steps`."""
    if len(path) != 1 or str(path[0]) not in CONFIG_KEYS or "defaults" not in model.model_fields:
        return ""
    keys = [str(path[0])]
    while isinstance(value, dict) and len(value) == 1:
        (k, value), = value.items()
        keys.append(str(k))
    return f"; did you mean 'defaults.{'.'.join(keys)}'? (a run's config sits under `defaults:`)"


SCALAR_KEYS = tuple(k for k, f in RunConfig.model_fields.items() if not (isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)))


LABEL = TypeAdapter(Label)  # what RunSpec.labels holds per axis


def _is_label(v: Any) -> bool:
    try:
        LABEL.validate_python(v, strict=True)
    except ValidationError:
        return False
    return True


def _check_head(key: str, where: KeyPath, loc: Locator, what: str = "axis") -> None:
    """`key` is a dotted config path: it starts with a config key, and goes no deeper than a scalar one."""
    head = key.split(".")[0]
    if head not in CONFIG_KEYS:
        raise SpecError(loc.find(where), f"{what} must start with one of {', '.join(CONFIG_KEYS)}{did_you_mean(head, list(CONFIG_KEYS))}")
    if head in SCALAR_KEYS and key != head:
        raise SpecError(loc.find(where), f"'{head}' is a single value: write '{head}', not '{key}'")


def _check_axes(spec: GridSpec, loc: Locator, at: KeyPath = ()) -> None:
    """The axes of the suite (`at` = ()) or of one stage (`at` = ("stages", name))."""
    lengths = {len(v) for v in spec.zip.values()}
    if len(lengths) > 1:
        raise SpecError(loc.find(at + ("zip",)), f"all zip axes must have the same length, got {sorted(lengths)}")
    seen: dict[str, KeyPath] = {}
    sections: list[tuple[KeyPath, dict[str, list]]] = [(at + ("grid",), spec.grid), (at + ("zip",), spec.zip)]
    sections += [(at + ("when", i, "grid"), b.grid) for i, b in enumerate(spec.when)]
    for i, b in enumerate(spec.when):
        for key in b.set:
            _check_head(key, at + ("when", i, "set", key), loc, "a set key")
    for where, axes in sections:
        for axis, values in axes.items():
            _check_head(axis, where + (axis,), loc)
            if not values:
                raise SpecError(loc.find(where + (axis,)), "empty axis: give at least one value")
            for j, v in enumerate(values):  # each value labels its runs (RunSpec.labels)
                if not _is_label(v):
                    raise SpecError(loc.find(where + (axis, j)), "an axis value must be a scalar or a list of scalars (set mappings in `defaults`, `when.set` or an ablation)")
            if axis in seen and where[len(at)] != "when":
                raise SpecError(loc.find(where + (axis,)), f"duplicate axis '{axis}' (also in {format_path(seen[axis])})")
            seen[axis] = where


def _check_storage(spec: SuiteSpec, loc: Locator, roots: tuple[Path, ...]) -> None:
    """A tune block's `storage` is a journal file inside the roots (or a storage the user allowed suites to name)."""
    for at, grid in [((), spec), *((("stages", n), st) for n, st in spec.stages.items())]:
        for i, block in enumerate(grid.tune):
            why = block.storage and roots_.storage_refusal(block.storage, roots)
            if why:
                raise SpecError(loc.find((*at, "tune", i, "storage")), why)


def load_suite(path: str | Path, overrides: list[str] = (), profile: str | None = None) -> LoadedSuite:
    """Read the suite (and its includes), apply `profile` (one of its `profiles`), then the overrides (Hydra's
    grammar, harness.spec.overrides), resolve `${path}` interpolations, validate.  The component packages
    (baselines and the plugins) are imported first: their registries name what a suite may use."""
    load_plugins()
    path = Path(path)
    edits = hydra_overrides.parse(list(overrides))  # a grammar error before the file is read
    dropped: list[str] = []
    try:
        data, loc = _read(path.resolve(), (path.resolve(),), dropped, roots_.include_roots(path))
    except SpecError as e:  # the file's own errors name it as the user gave it
        if e.loc.file != str(path.resolve()):
            raise
        raise SpecError(Loc(str(path), e.loc.line, e.loc.key), e.message) from None
    # report paths as the user gave them
    loc.locs = {p: Loc(str(path) if l.file == str(path.resolve()) else l.file, l.line, l.key) for p, l in loc.locs.items()}
    loc.root = Loc(str(path), 1, "")
    if "profile" in data:
        raise SpecError(loc.find(("profile",)), "'profile' is chosen with --profile NAME, not written in a suite")
    if profile is not None:
        data = apply_profile(data, loc, profile, _normalize)
    hydra_overrides.apply(data, loc, edits, dropped)
    data = interpolate.resolve(_normalize(data, loc), loc.find)
    try:
        spec = SuiteSpec.model_validate(data)
    except ValidationError as err:
        raise validation_error(err, SuiteSpec, loc.find) from None
    _check_axes(spec, loc)
    for name, stage in spec.stages.items():
        _check_axes(stage, loc, ("stages", name))
    _check_storage(spec, loc, roots_.allowed_roots(path))
    return LoadedSuite(spec, path, loc, dropped)
