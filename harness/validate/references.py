"""Every metric a suite names, checked against what its runs log (the names their methods declare plus the
harness's own; harness.validate.resources.DryBuild.metrics): report tables, figures (and their `over`),
heatmaps, claims (every check and side) and tune objectives.  A name that no selected run logs, or a
prefix (`metric: exact/len_` with the suffix as the axis) that starts none, is `file:line: key: ...` with
did-you-mean at the reference.  The runs a reference reads are those its `where` selects (config paths,
`ablation`, `stage`; a list value is any of, a list-valued config is matched as the text MLflow stores);
a `where` that selects no run is an error too (the table, figure or claim would be empty)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from harness.registry import did_you_mean
from harness.spec.claim_models import AllOf
from harness.spec.errors import SpecError
from harness.spec.load import LoadedSuite
from harness.spec.models import RunSpec
from harness.spec.tree import run_matches, value_matches
from harness.spec.yamlio import KeyPath


@dataclass(frozen=True)
class Reference:
    """One metric a suite names: where (key path), which runs (`where`), and whether it is a prefix."""

    path: KeyPath
    metric: str
    where: Mapping[str, Any]
    prefix: bool = False
    axis_range: tuple[float | None, float | None] = (None, None)  # a claim's from / to on a suffix axis


def _row(run: RunSpec) -> dict[str, Any]:
    """A run as a report row: its flat config, stage and ablation (as harness.report.frame sees it)."""
    return {"stage": run.stage, "ablation": run.ablation, **run.config.flat()}


def _selected(row: dict[str, Any], where: Mapping[str, Any]) -> bool:
    return all(k in row and value_matches(row[k], v) for k, v in where.items())


def report_references(loaded: LoadedSuite) -> Iterator[Reference]:
    spec = loaded.spec
    for i, t in enumerate(spec.report.tables):
        yield Reference(("report", "tables", i, "metric"), t.metric, t.where, prefix=t.columns is None)
    for i, f in enumerate(spec.report.figures):
        yield Reference(("report", "figures", i, "metric"), f.metric, f.where, prefix=f.x is None and f.over is None)
        if f.over is not None:
            yield Reference(("report", "figures", i, "over"), f.over, f.where)
    for i, h in enumerate(spec.report.heatmaps):
        yield Reference(("report", "heatmaps", i, "metric"), h.metric, h.where, prefix=h.columns is None)
    for i, c in enumerate(spec.claims):
        if c.check is not None:
            yield from _check_references(c.check, ("claims", i, "check"))


def _check_references(check: Any, at: KeyPath) -> Iterator[Reference]:
    if isinstance(check, AllOf):
        for j, sub in enumerate(check.checks):
            yield from _check_references(sub, at + ("checks", j))
        return
    prefix = check.axis == "suffix"
    span = (check.from_, check.to) if prefix else (None, None)
    sides = [(name, getattr(check, name)) for name in ("a", "b") if hasattr(check, name)]
    if check.metric is not None and (not sides or any(s.metric is None for _, s in sides)):
        yield Reference(at + ("metric",), check.metric, check.where, prefix, span)
    for name, side in sides:
        if side.metric is not None:
            yield Reference(at + (name, "metric"), side.metric, {**check.where, **side.where}, prefix, span)
        if side.select_on is not None:
            yield Reference(at + (name, "select_on"), side.select_on, {**check.where, **side.where})


def _suffixes(names: set[str], prefix: str) -> list[str]:
    return [n[len(prefix):] for n in names if n.startswith(prefix) and len(n) > len(prefix)]


def _in_range(suffix: str, lo: float | None, hi: float | None) -> bool:
    try:
        x = float(suffix)
    except ValueError:
        return False
    return (lo is None or x >= lo) and (hi is None or x <= hi)


def check_reference(ref: Reference, runs: list[RunSpec], logged: Mapping[str, frozenset[str]], locate) -> None:
    """`logged`: run_id -> the metric names that run logs."""
    chosen = [r for r in runs if _selected(_row(r), ref.where)]
    if not chosen:
        raise SpecError(locate(ref.path[:-1] + ("where",)), f"selects no run of the suite (where: {dict(ref.where)})")
    names = set().union(*(logged[r.run_id] for r in chosen))
    if ref.prefix:
        rest = _suffixes(names, ref.metric)
        lo, hi = ref.axis_range
        if rest and (lo is not None or hi is not None) and not any(_in_range(s, lo, hi) for s in rest):
            raise SpecError(locate(ref.path), f"no metric '{ref.metric}<n>' with n in [{lo}, {hi}] is logged "
                                              f"(logged: {', '.join(sorted(ref.metric + s for s in rest))})")
        if rest:
            return
        families = sorted({n.rsplit("_", 1)[0] + "_" if "_" in n else n for n in names})
        raise SpecError(locate(ref.path), f"no metric starting with '{ref.metric}' is logged by the runs it selects"
                                          f"{did_you_mean(ref.metric, families)} (logged: {_shown(names)})")
    if ref.metric not in names:
        raise SpecError(locate(ref.path), f"no run it selects logs metric '{ref.metric}'{did_you_mean(ref.metric, sorted(names))} "
                                          f"(logged: {_shown(names)})")


def _shown(names: set[str], n: int = 12) -> str:
    shown = sorted(names)
    return ", ".join(shown[:n]) + (f", ... ({len(shown)} in all)" if len(shown) > n else "")


def check_reference_arms(loaded: LoadedSuite, runs: list[RunSpec]) -> list[str]:
    """The suite's reference arms: each selects runs and is matched on config paths its runs have; each name a
    claim lists is declared.  Returns warnings (`file:line: message`): claims read against no floor and ceiling."""
    spec, locate = loaded.spec, loaded.locator.find
    rows = [_row(r) for r in runs]
    for name, ref in spec.references.items():
        chosen = [r for r in rows if _selected(r, ref.where)]
        if not chosen:
            raise SpecError(locate(("references", name, "where")), f"selects no run of the suite (where: {dict(ref.where)})")
        for j, path in enumerate(ref.match):
            if not any(path in r for r in chosen):
                known = sorted({k for r in chosen for k in r})
                raise SpecError(locate(("references", name, "match", j)), f"'{path}' is not a config path of the runs it "
                                f"selects{did_you_mean(path, known)}")
    for i, c in enumerate(spec.claims):
        for j, name in enumerate(c.references or []):
            if name not in spec.references:
                raise SpecError(locate(("claims", i, "references", j)), f"unknown reference '{name}'"
                                f"{did_you_mean(name, list(spec.references))} (declared: {', '.join(spec.references) or 'none'})")
    warnings = []
    for i, c in enumerate(spec.claims):
        if c.check is None or c.references == []:
            continue
        names = list(spec.references) if c.references is None else c.references
        roles = {spec.references[n].role for n in names}
        if roles != {"floor", "ceiling"}:
            missing = " and ".join(r for r in ("floor", "ceiling") if r not in roles)
            warnings.append(f"{locate(('claims', i))}: claim '{c.id}' is read against no {missing}: its verdict cannot say "
                            "whether the experiment could tell its arms apart (declare `references`, or `references: []` "
                            "on a claim no floor or ceiling frames)")
    return warnings


def check_references(loaded: LoadedSuite, runs: list[RunSpec], logged: Mapping[str, frozenset[str]]) -> None:
    """Every metric the suite's report, claims and tune blocks name (module docstring)."""
    locate = loaded.locator.find
    for ref in report_references(loaded):
        check_reference(ref, runs, logged, locate)
    scopes = [((), loaded.spec.tune)] + [(("stages", name), st.tune) for name, st in loaded.spec.stages.items()]
    for at, blocks in scopes:
        stage_runs = [r for r in runs if r.source_name and r.stage == at[1]] if at else [r for r in runs if not r.source_name]
        for i, block in enumerate(blocks):
            tuned = [r for r in stage_runs if run_matches(r, block.where)]
            names = set().union(*(logged[r.run_id] for r in tuned)) if tuned else set()
            if tuned and block.objective not in names:
                raise SpecError(locate(at + ("tune", i, "objective")), f"no run this block tunes logs metric '{block.objective}'"
                                f"{did_you_mean(block.objective, sorted(names))} (logged: {_shown(names)})")
