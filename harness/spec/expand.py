"""SuiteSpec -> [RunSpec].

    points  = grid (cartesian) x zip (lock-step)
    points  = for each `when` branch: matching points get `set` and are crossed with its grid
    points -= exclude
    runs    = points x seeds  +  ablations (defaults + diff) x seeds
              (a point that sets `seed` through an axis is not crossed with `seeds` again)

Conditions (`when.if`, `exclude`) compare the values written in the suite (defaults, axes,
sets); a key not written compares as null.  Every resolved config is validated against the
registered component configs; an error names the suite line that produced the bad value.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from harness.spec.config import validate_config
from harness.spec.errors import SpecError
from harness.spec.load import LoadedSuite, Locator
from harness.spec.models import RunSpec
from harness.spec.tree import matches, merge, set_path
from harness.spec.tune import check_block
from harness.spec.yamlio import KeyPath


@dataclass
class Point:
    """Axis assignments of one grid point: config path -> value, and where each was written."""

    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, KeyPath] = field(default_factory=dict)
    labels: dict[str, Any] = field(default_factory=dict)

    def plus(self, values: dict[str, Any], where: KeyPath, label: bool, index: int | None = None) -> Point:
        p = Point(dict(self.values), dict(self.sources), dict(self.labels))
        for k, v in values.items():
            p.values[k], p.sources[k] = v, where + (k,) + (() if index is None else (index,))
            if label:
                p.labels[k] = v
        return p


def _product(axes: dict[str, list[Any]], where: KeyPath, base: Point) -> list[Point]:
    """Cartesian product of the axes, each value remembering its list element in the suite."""
    keys = list(axes)
    out = []
    for combo in itertools.product(*(range(len(axes[k])) for k in keys)):
        p = base
        for k, i in zip(keys, combo):
            p = p.plus({k: axes[k][i]}, where, True, index=i)
        out.append(p)
    return out


def resolve(base: dict[str, Any], point: Point) -> dict[str, Any]:
    tree = merge({}, base)
    # component names first: switching a component resets its parameters
    for path in sorted(point.values, key=lambda p: not p.endswith(".name")):
        set_path(tree, path, point.values[path])
    return tree


def _locate_for(loaded: LoadedSuite, point: Point, base_path: KeyPath):
    loc: Locator = loaded.locator

    def locate(path: KeyPath):
        dotted = ".".join(str(p) for p in path)
        for axis, src in point.sources.items():
            if dotted == axis or dotted.startswith(axis + ".") or axis.startswith(dotted + "."):
                return loc.find(src)
        for n in range(len(path), 0, -1):  # written under this run's base (an ablation's diff)?
            if base_path + path[:n] in loc.locs:
                return loc.find(base_path + path)
        return loc.find(("defaults",) + path)

    return locate


def expand(loaded: LoadedSuite) -> list[RunSpec]:
    spec = loaded.spec
    points = _product(spec.grid, ("grid",), Point())
    if spec.zip:
        n = len(next(iter(spec.zip.values())))
        zipped = []
        for p in points:
            for i in range(n):
                q = p
                for k, vals in spec.zip.items():
                    q = q.plus({k: vals[i]}, ("zip",), True, index=i)
                zipped.append(q)
        points = zipped
    for i, branch in enumerate(spec.when):
        nxt: list[Point] = []
        for p in points:
            if not matches(resolve(spec.defaults, p), branch.if_):
                nxt.append(p)
                continue
            q = p.plus(branch.set, ("when", i, "set"), False)
            nxt += _product(branch.grid, ("when", i, "grid"), q)
        points = nxt
    points = [p for p in points if not any(matches(resolve(spec.defaults, p), ex) for ex in spec.exclude)]
    if not points:
        raise SpecError(loaded.locator.find(("exclude",) if spec.exclude else ("grid",)), "the grid expands to no runs")

    runs: list[RunSpec] = []
    seen: set[str] = set()

    def add(raw: dict[str, Any], point: Point, base_path: KeyPath, ablation: str) -> None:
        # a `seed` axis (e.g. per `when` branch) takes the place of the suite's `seeds`
        for seed in [raw["seed"]] if "seed" in point.values else spec.seeds:
            cfg = validate_config({**raw, "seed": seed}, _locate_for(loaded, point, base_path))
            run = RunSpec.create(spec.name, cfg, point.labels, ablation)
            if run.run_id not in seen:  # identical configs are one run
                seen.add(run.run_id)
                runs.append(run)

    for p in points:
        add(resolve(spec.defaults, p), p, ("defaults",), "")
    for name, diff in spec.ablations.items():
        add(merge(spec.defaults, diff), Point(), ("ablations", name), name)
    check_tune(loaded, runs)
    return runs


def check_tune(loaded: LoadedSuite, runs: list[RunSpec]) -> None:
    names: set[str] = set()
    for i, block in enumerate(loaded.spec.tune):
        if block.name in names:
            raise SpecError(loaded.locator.find(("tune", i, "name")), f"duplicate tune block name '{block.name}'")
        names.add(block.name)
        check_block(block, i, runs, loaded.spec.seeds, loaded.locator)
