"""Seeds until decided: the runs a claim with `until_decided` depends on, and the same runs at more seeds.

The extra runs are RunSpecs like the suite's own (the config with another `seed`, so another run_id); the
report reads every one of them the store has finished, so a later `harness report` shows them too."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import polars as pl

from harness.report.frame import select
from harness.spec.claim_models import AllOf, ClaimSpec, TwoSelections
from harness.spec.models import RunSpec


def with_seed(run: RunSpec, seed: int) -> RunSpec:
    cfg = run.config.model_copy(update={"seed": seed})
    labels = {**run.labels, "seed": seed} if "seed" in run.labels else dict(run.labels)
    out = RunSpec.create(run.suite, cfg, labels, run.ablation, run.stage, run.source_name)
    return out.model_copy(update={"tuned": run.tuned})


def _selections(check: Any) -> Iterable[list[dict[str, Any]]]:
    """The `where` filters (applied in turn) of every selection of a check."""
    if isinstance(check, AllOf):
        for c in check.checks:
            yield from _selections(c)
    elif isinstance(check, TwoSelections):
        yield [check.where, check.a.where]
        yield [check.where, check.b.where]
    else:
        yield [check.where]


def claim_cells(claim: ClaimSpec, frame: pl.DataFrame) -> set[str]:
    """The cells (runs without their seed) whose runs the claim's check reads."""
    if claim.check is None or frame.is_empty():
        return set()
    out: set[str] = set()
    for wheres in _selections(claim.check):
        sub = frame
        for w in wheres:
            sub = select(sub, w)
        out |= set(sub["cell"].to_list()) if "cell" in sub.columns else set()
    return out


def extra_seed_runs(runs: Sequence[RunSpec], cells: set[str], n_seeds: int) -> list[RunSpec]:
    """The runs of `cells` at the next unused seeds, so that each cell has `n_seeds` seeds (runs that start
    from a source run are left as they are: their seed is their source's)."""
    by_cell: dict[str, list[RunSpec]] = {}
    for r in runs:
        if r.cell in cells and r.config.source is None:
            by_cell.setdefault(r.cell, []).append(r)
    out = []
    for group in by_cell.values():
        seeds = {r.config.seed for r in group}
        nxt = max(seeds) + 1
        while len(seeds) < n_seeds:
            out.append(with_seed(group[0], nxt))
            seeds.add(nxt)
            nxt += 1
    return out


def candidate_runs(spec_claims: Sequence[ClaimSpec], runs: Sequence[RunSpec]) -> list[RunSpec]:
    """Every extra-seed run `until_decided` could have added (up to each claim's `max_seeds`, in any cell the
    suite has): what a report looks for in the store besides the suite's own runs."""
    caps = [c.until_decided.max_seeds for c in spec_claims if c.until_decided is not None]
    if not caps:
        return []
    known = {r.run_id for r in runs}
    return [r for r in extra_seed_runs(runs, {r.cell for r in runs}, max(caps)) if r.run_id not in known]
