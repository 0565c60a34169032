"""`tune:` blocks of a suite: the typed search space, and the pure functions that turn a block
plus the expanded runs into cells (one study each), trial configs, and tuned final runs.

    cells     = runs matching `where`, grouped by the values of the `per` config paths
    trial     = the cell's run at the tuning seed  + `set` (e.g. fewer steps)  + sampled params
    final run = every run of the cell              + the best params of its study

No Optuna here (see harness/tune/study.py); this layer only knows config paths and values."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from harness.spec.config import validate_config
from harness.spec.errors import SpecError
from harness.spec.models import CONFIG_KEYS, RunSpec
from harness.spec.tree import get_path, run_matches, set_path
from harness.spec.tune_models import TuneSpec
from harness.spec.yamlio import KeyPath


# ---------------------------------------------------------------- scopes, cells and configs
@dataclass(frozen=True)
class TuneScope:
    """The tune blocks of one stage: the suite's own (`at` = ()) or a later stage's (`at` = ("stages",
    name)), with the stage's seeds (a block's default tuning seed is the first)."""

    stage: str
    blocks: tuple[TuneSpec, ...]
    at: KeyPath
    seeds: tuple[int, ...]

    def study_prefix(self, suite: str) -> str:
        """Studies are named <suite>/<block>/... for the suite's own blocks, <suite>/<stage>/<block>/... else."""
        return f"{suite}/{self.stage}" if self.at else suite


@dataclass(frozen=True)
class Cell:
    """The runs one study tunes: they share the values of the block's `per` paths."""

    block: TuneSpec
    key: dict[str, Any]  # per path -> value
    runs: tuple[RunSpec, ...]
    base: RunSpec  # the run whose config (at the tuning seed) the trials start from

    @property
    def label(self) -> str:
        return ",".join(f"{k}={_show(v)}" for k, v in self.key.items()) or "all"

    def study_name(self, suite: str) -> str:
        """Changes when anything a trial depends on changes, so an edited suite starts afresh."""
        what = {"base": self.base.config.canonical_json(), "block": self.block.model_dump(mode="json", exclude={"trials", "storage"})}
        digest = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:10]
        return f"{suite}/{self.block.name}/{self.label}/{digest}"


def _show(v: Any) -> str:
    return json.dumps(v, separators=(",", ":")) if isinstance(v, (list, dict)) else str(v)


def _flat_get(run: RunSpec, path: str) -> Any:
    return get_path(run.config.model_dump(mode="json"), path, None)


def _has_path(run: RunSpec, path: str) -> bool:
    try:
        get_path(run.config.model_dump(mode="json"), path)
    except KeyError:
        return False
    return True


def cells(block: TuneSpec, runs: list[RunSpec], seeds: list[int]) -> list[Cell]:
    seed = seeds[0] if block.seed is None else block.seed
    groups: dict[str, list[RunSpec]] = {}
    keys: dict[str, dict[str, Any]] = {}
    for r in runs:
        if r.ablation or not run_matches(r, block.where):  # a block tunes the grid; an ablation keeps its own config
            continue
        key = {p: _flat_get(r, p) for p in block.per}
        k = json.dumps(key, sort_keys=True)
        groups.setdefault(k, []).append(r)
        keys[k] = key
    out = []
    for k, members in groups.items():
        base = next((r for r in members if r.config.seed == seed), members[0])
        out.append(Cell(block, keys[k], tuple(members), base))
    return out


def with_values(run: RunSpec, values: dict[str, Any], locate, seed: int | None = None) -> RunSpec:
    """`run` with config paths set to `values` (re-validated; the run_id follows the new config)."""
    tree = run.config.model_dump(mode="json", exclude_unset=True)  # as written: a switched component keeps only what was set
    for path, value in values.items():
        set_path(tree, path, value)
    if seed is not None:
        tree["seed"] = seed
    cfg = validate_config(tree, locate)
    return RunSpec.create(run.suite, cfg, run.labels, run.ablation)


def trial_run(cell: Cell, params: dict[str, Any], locate, seeds: list[int]) -> RunSpec:
    seed = seeds[0] if cell.block.seed is None else cell.block.seed
    return with_values(cell.base, {**cell.block.set, **params}, locate, seed)


def tuned(runs: list[RunSpec], cell: Cell, best: dict[str, Any], locate) -> list[RunSpec]:
    """Replace the cell's runs by copies carrying the best params (other runs unchanged)."""
    ids = {r.run_id for r in cell.runs}
    return [with_values(r, best, locate).model_copy(update={"tuned": dict(best)}) if r.run_id in ids else r for r in runs]


def check_block(block: TuneSpec, index: int, runs: list[RunSpec], seeds: list[int], locator, at: KeyPath = ()) -> None:
    """Fail at validation time (file:line) on a space path, `set` or `per` that no run can take (`at`: the
    stage whose block it is, () for the suite's own)."""
    where = at + ("tune", index)
    for section in ("space", "set", "per", "where"):
        for path in getattr(block, section):
            if path.split(".")[0] not in CONFIG_KEYS:
                key = where + ((section,) if section == "per" else (section, path))
                raise SpecError(locator.find(key), f"'{path}' must start with one of {', '.join(CONFIG_KEYS)}")
    for section in ("per", "where"):
        for path in getattr(block, section):
            if not any(_has_path(r, path) for r in runs):
                raise SpecError(locator.find(where + (section,)), f"'{path}' is not a config path of any run")
    found = cells(block, runs, seeds)
    if not found:
        raise SpecError(locator.find(where + ("where",)), f"tune block '{block.name}' matches no run of the grid")
    for cell in found:
        trial_run(cell, {}, lambda p: locator.find(where + ("set",)), seeds)
        for path, param in block.space.items():
            for value in param.values():
                trial_run(cell, {path: value}, lambda p, path=path: locator.find(where + ("space", path)), seeds)
