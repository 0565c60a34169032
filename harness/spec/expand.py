"""SuiteSpec -> [RunSpec].

    points  = grid (cartesian) x zip (lock-step)
    points  = for each `when` branch: matching points get `set` and are crossed with its grid
    points -= exclude
    runs    = points x seeds  +  ablations (defaults + diff) x seeds
              (a point that sets `seed` through an axis is not crossed with `seeds` again)
    stages  = for each later stage, in order: every run of its `from` stage matching `where`, as the base
              (its config + the stage's defaults), crossed with the stage's points and ablations, over the
              stage's seeds (default: the source run's seed); each run carries its source (RunConfig.source)

Conditions (`when.if`, `exclude`) compare the values written in the suite (defaults, axes,
sets); a key not written compares as null.  Every resolved config is validated against the
registered component configs; an error names the suite line that produced the bad value.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from harness.registry import METHODS, did_you_mean
from harness.spec.config import validate_config
from harness.spec.errors import SpecError
from harness.spec.load import LoadedSuite, Locator
from harness.spec.models import GridSpec, RunSpec
from harness.spec.tree import matches, merge, run_matches, set_path
from harness.spec.tune import check_block
from harness.spec.tune_models import TuneSpec
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


def resolve(base: dict[str, Any], point: Point, dropped: list[str] | None = None) -> dict[str, Any]:
    tree = merge({}, base)
    # component names first: switching a component keeps only the parameters the new one has
    for path in sorted(point.values, key=lambda p: not p.endswith(".name")):
        set_path(tree, path, point.values[path], dropped)
    return tree


def _locate_for(loaded: LoadedSuite, point: Point, base_path: KeyPath, at: KeyPath = ()):
    """Where a config path of a run was written: its axis, its base (an ablation's diff), the defaults of
    the suite or stage (`at`), and for a stage run a value inherited from its source: the stage's `from`."""
    loc: Locator = loaded.locator

    def locate(path: KeyPath):
        dotted = ".".join(str(p) for p in path)
        for axis, src in point.sources.items():
            if dotted == axis or dotted.startswith(axis + ".") or axis.startswith(dotted + "."):
                return loc.find(src)
        for n in range(len(path), 0, -1):  # written under this run's base (an ablation's diff)?
            if base_path + path[:n] in loc.locs:
                return loc.find(base_path + path)
        if at and not any(at + ("defaults",) + path[:n] in loc.locs for n in range(len(path), 0, -1)):
            return loc.find(at + ("from",))  # inherited from the source run
        return loc.find(at + ("defaults",) + path)

    return locate


def _within_cap(loaded: LoadedSuite, n: int, sizes: dict[str, int], where: KeyPath) -> None:
    """Refuse, before building them, `n` runs past scheduler.max_runs, naming the axes that multiply."""
    cap = loaded.spec.scheduler.max_runs
    if n > cap:
        factors = " x ".join(f"{k} {v:,}" for k, v in sizes.items() if v > 1)
        raise SpecError(loaded.locator.find(where), f"the grid expands to {n:,} runs ({factors}), over scheduler.max_runs = {cap:,}")


def grid_points(loaded: LoadedSuite, spec: GridSpec, base: dict[str, Any], at: KeyPath = (), n_seeds: int = 1) -> list[Point]:
    """The points of a suite's (`at` = ()) or a stage's grid: grid x zip, `when` branches, minus `exclude`;
    conditions compare `base` (the written defaults; for a stage, its source's config and its defaults).
    Each product is sized (x `n_seeds`) against scheduler.max_runs before it is built."""
    sizes = {k: len(v) for k, v in spec.grid.items()} | ({"zip": len(next(iter(spec.zip.values())))} if spec.zip else {})
    _within_cap(loaded, math.prod(sizes.values()) * n_seeds, sizes | {"seeds": n_seeds}, at + ("grid",))
    points = _product(spec.grid, at + ("grid",), Point())
    if spec.zip:
        n = len(next(iter(spec.zip.values())))
        zipped = []
        for p in points:
            for i in range(n):
                q = p
                for k, vals in spec.zip.items():
                    q = q.plus({k: vals[i]}, at + ("zip",), True, index=i)
                zipped.append(q)
        points = zipped
    for i, branch in enumerate(spec.when):
        hits = sum(matches(resolve(base, p), branch.if_) for p in points)
        sizes = {"points": len(points) - hits + hits * math.prod(len(v) for v in branch.grid.values()), "seeds": n_seeds}
        _within_cap(loaded, sizes["points"] * n_seeds, sizes, at + ("when", i, "grid"))
        nxt: list[Point] = []
        for p in points:
            if not matches(resolve(base, p), branch.if_):
                nxt.append(p)
                continue
            q = p.plus(branch.set, at + ("when", i, "set"), False)
            nxt += _product(branch.grid, at + ("when", i, "grid"), q)
        points = nxt
    points = [p for p in points if not any(matches(resolve(base, p), ex) for ex in spec.exclude)]
    if not points:
        raise SpecError(loaded.locator.find(at + (("exclude",) if spec.exclude else ("grid",))), "the grid expands to no runs")
    return points


class _Runs:
    """The runs of a suite in order, identical configs kept once."""

    def __init__(self, loaded: LoadedSuite) -> None:
        self.loaded, self.runs, self.seen = loaded, [], set()

    def add_grid(self, spec: GridSpec, base: dict[str, Any], seeds: list[int], at: KeyPath, stage: str,
                 source: RunSpec | None = None) -> list[RunSpec]:
        """The runs of `spec`'s points and ablations on `base`, each over `seeds`."""
        added: list[RunSpec] = []

        def add(raw: dict[str, Any], point: Point, base_path: KeyPath, ablation: str, dropped: list[str]) -> None:
            if source is not None:
                raw = {**raw, "source": {"stage": source.stage, "run_id": source.run_id, "config": source.config.model_dump(mode="json")}}
            if self.loaded.spec.profile:
                raw = {**raw, "profile": self.loaded.spec.profile}
            # a `seed` axis (e.g. per `when` branch) takes the place of the suite's `seeds`
            for seed in [raw["seed"]] if "seed" in point.values else seeds:
                cfg = validate_config({**raw, "seed": seed}, _locate_for(self.loaded, point, base_path, at))
                run = RunSpec.create(self.loaded.spec.name, cfg, point.labels, ablation, stage, source.name if source else "", dropped)
                if run.run_id not in self.seen:  # identical configs are one run
                    self.seen.add(run.run_id)
                    self.runs.append(run)
                    added.append(run)
                    _within_cap(self.loaded, len(self.runs), {"runs so far": len(self.runs)}, at + ("grid",))

        for p in grid_points(self.loaded, spec, base, at, len(seeds)):
            dropped: list[str] = []
            add(resolve(base, p, dropped), p, at + ("defaults",), "", dropped)
        for name, diff in spec.ablations.items():
            dropped = []
            add(merge(base, diff, dropped=dropped), Point(), at + ("ablations", name), name, dropped)
        return added


def expand_first(loaded: LoadedSuite) -> list[RunSpec]:
    """The runs of the suite's own (first) stage."""
    spec = loaded.spec
    first = _Runs(loaded).add_grid(spec, spec.defaults, spec.seeds, (), spec.stage if spec.stages else "")
    check_tune(loaded, spec.tune, first, spec.seeds, ())
    return first


def expand_stage(loaded: LoadedSuite, name: str, sources: list[RunSpec]) -> list[RunSpec]:
    """The runs of a later stage, from the runs of its `from` stage (`sources`, e.g. tuned ones)."""
    stage, at = loaded.spec.stages[name], ("stages", name)
    matching = [r for r in sources if run_matches(r, stage.where)]
    if not matching:
        raise SpecError(loaded.locator.find(at + ("where",)), f"matches no run of stage '{stage.from_}'")
    runs = _Runs(loaded)
    added = []
    for src in matching:
        # the source's config as written (not its defaults): a switched component keeps only what was set
        base = merge(src.config.model_dump(mode="json", exclude={"source"}, exclude_unset=True), stage.defaults)
        added += runs.add_grid(stage, base, stage.seeds or [src.config.seed], at, name, src)
    check_sources(loaded, added, {r.run_id: r for r in matching}, at)
    check_tune(loaded, stage.tune, added, stage_seeds(loaded, name, added), at)
    return added


def stage_seeds(loaded: LoadedSuite, name: str, runs: list[RunSpec]) -> list[int]:
    """A stage's seeds: its own, else those its runs took from their sources."""
    return loaded.spec.stages[name].seeds or sorted({r.config.seed for r in runs})


def check_stage_order(loaded: LoadedSuite) -> None:
    """Each stage starts from the suite's own stage or one declared before it."""
    known = [loaded.spec.stage]
    for name, stage in loaded.spec.stages.items():
        if stage.from_ not in known:
            raise SpecError(loaded.locator.find(("stages", name, "from")), f"unknown stage '{stage.from_}'"
                            f"{did_you_mean(stage.from_, known)} (stages before '{name}': {', '.join(known)})")
        known.append(name)


def expand(loaded: LoadedSuite) -> list[RunSpec]:
    check_stage_order(loaded)
    by_stage = {loaded.spec.stage: expand_first(loaded)}
    for name, stage in loaded.spec.stages.items():
        by_stage[name] = expand_stage(loaded, name, by_stage[stage.from_])
        total = sum(map(len, by_stage.values()))
        _within_cap(loaded, total, {"runs of the stages so far": total}, ("stages", name))
    return [r for runs in by_stage.values() for r in runs]


def check_sources(loaded: LoadedSuite, runs: list[RunSpec], sources: dict[str, RunSpec], at: KeyPath) -> None:
    """A stage run's method must be able to start from its source's: what it requires, the source's
    method provides (registry capabilities, e.g. token features for a probe)."""
    for r in runs:
        src = sources[r.config.source.run_id]
        needs = METHODS.get(r.config.method.name).requires_for(r.config.method)
        has = METHODS.get(src.config.method.name).provides
        if not needs <= has:
            missing = ", ".join(sorted(needs - has))
            raise SpecError(_locate_for(loaded, Point(), at + ("defaults",), at)(("method", "name")),
                            f"method '{r.config.method.name}' needs {missing} from its source run, which method "
                            f"'{src.config.method.name}' does not provide (it provides: {', '.join(sorted(has)) or 'nothing'})")


def check_tune(loaded: LoadedSuite, blocks: list[TuneSpec], runs: list[RunSpec], seeds: list[int], at: KeyPath) -> None:
    names: set[str] = set()
    for i, block in enumerate(blocks):
        if block.name in names:
            raise SpecError(loaded.locator.find(at + ("tune", i, "name")), f"duplicate tune block name '{block.name}'")
        names.add(block.name)
        check_block(block, i, runs, seeds, loaded.locator, at)


def locate_run(loaded: LoadedSuite, run: RunSpec):
    """Where the suite wrote a config path of an expanded run (its grid / zip / when axis, its ablation, its
    stage's or the suite's defaults; a stage run's inherited value: the stage's `from`): a Locate."""
    at: KeyPath = ("stages", run.stage) if run.source_name else ()
    base = at + (("ablations", run.ablation) if run.ablation else ("defaults",))
    n = len(at)
    sources: dict[str, KeyPath] = {}
    for axis in run.labels:
        for key in loaded.locator.locs:
            if key and key[:n] == at and key[-1] == axis and (
                    (len(key) == n + 2 and key[n] in ("grid", "zip")) or (len(key) == n + 4 and key[n] == "when" and key[n + 2] == "grid")):
                sources[axis] = key
                break
    return _locate_for(loaded, Point(sources=sources), base, at)
