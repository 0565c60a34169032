"""The documented Python API: what `harness run / tune / report` do, one function each.

    from harness import pipeline
    suite = pipeline.load("smoke", ["seeds=[0,1,2]"])          # find + validate + expand
    result = pipeline.run(suite, workers=2)                     # tune (if the suite asks) -> runs -> report
    result.outcome.failed, result.report.path, result.report.claims
    pipeline.report(suite).claims                               # rebuild the report from the store
    pipeline.results(suite).frame                               # polars: one row per run (+ .history); .to_pandas()
    pipeline.status(suite)                                      # finished / stale / failed / running / missing per run

    suite.yaml -> SuiteSpec -> [RunSpec] -> (tune: [RunSpec] with best params) -> pool -> worker -> MLflow -> report

One invocation holds one suite session (the lock, reaped orphans, signals) and one pool (warm workers or
Ray actors) for its tuning trials and its runs.  Claims are checked once, when the report is built."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from harness.backends import BackendUnavailable, Pool, WarmWorkers, check_backend, make_pool, ray_address
from harness.backends.warm import TRIAL_MODULES
from harness.estimate import Cache as EstimateCache
from harness.estimate import Estimate, estimate
from harness.orchestrate import SuiteOutcome, run_suite
from harness.provenance import require_clean as refuse_dirty
from harness.session import Session, suite_session, view_columns
from harness.spec import LoadedSuite, RunSpec, SpecError, load_and_expand
from harness.spec.errors import Loc
from harness.spec.expand import expand_stage, stage_seeds
from harness.spec.tune import TuneScope
from harness.store import StoreLayout, default_uri, ui_url
from harness.tags import Tag
from harness.track import Tracker, TrackingError
from harness.tune.study import StudySummary, apply_studies, default_storage, suite_scope, tune_suite
from harness.validate import Checked, ConfigSummary, check_suite

if TYPE_CHECKING:  # harness.report (scipy.stats, polars, matplotlib: ~1.2 s) is imported where a report is made
    from harness.report import ClaimResult, SuiteResults
    from harness.report.status import RunState

REPORTS_DIR = Path("reports")


@dataclass
class Suite:
    """A loaded, validated and expanded suite (`runs`: the RunSpecs before tuning)."""

    loaded: LoadedSuite
    runs: list[RunSpec]
    overrides: list[str] = field(default_factory=list)
    checked: Checked | None = None  # the dry build (harness.validate), when load ran it
    variant: str = ""  # a name for a variant (--name): its report folder is <suite>+<name>

    @property
    def name(self) -> str:
        return self.loaded.spec.name

    @property
    def report_name(self) -> str:
        """The report's folder: `<suite>` for the suite as written, `<suite>.<profile>` with a profile, and
        `+<name>` (or `+<hash of the overrides>`) appended for a variant, so that two variants never overwrite
        each other's report (a suite name has neither a dot nor a plus)."""
        profile = self.loaded.spec.profile
        base = f"{self.name}.{profile}" if profile else self.name
        if self.variant:
            return f"{base}+{self.variant}"
        if self.overrides:
            return f"{base}+{hashlib.sha256(' '.join(sorted(self.overrides)).encode()).hexdigest()[:8]}"
        return base

    @property
    def described(self) -> str:
        """What this variant is, in words (the report's header)."""
        if not self.overrides:
            return ""
        return (f"Variant{' ' + repr(self.variant) if self.variant else ''}: the suite with the overrides "
                f"`{' '.join(self.overrides)}` (report folder `{self.report_name}`), not the suite as written.")


@dataclass
class ReportResult:
    path: Path  # report.md
    claims: list[ClaimResult]
    logged_to: str | None  # the MLflow artifact URI, or None when logging it failed (`warning` says why)
    warning: str = ""
    ui_link: str = ""  # report.html in the MLflow UI (the parent run's artifacts)


@dataclass
class RunResult:
    outcome: SuiteOutcome
    runs: list[RunSpec]  # the final runs (tuned cells carry their best params)
    tuning: list[StudySummary]
    report: ReportResult | None


def load(suite: str | Path, overrides: Sequence[str] = (), backend: str | None = None, profile: str | None = None,
         check: bool = True, name: str = "") -> Suite:
    """Find (a name in the suite folders, or a path), load, validate and expand a suite, with one of its
    `profiles` applied when `profile` names one, then (`check`) build each distinct task/model/method
    combination once and check every metric it names (harness.validate).  `backend` overrides
    `scheduler.backend` (and is checked: a missing package or an unreachable cluster is a SpecError naming
    --backend or the suite's setting).  `name`: the variant's name (its report folder, see Suite.report_name)."""
    if name and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        raise SpecError(Loc("--name", 0, ""), f"a variant name is 1-64 letters, digits, '_' and '-', got {name!r}")
    extra = [f"++scheduler.backend={backend}"] if backend else []
    loaded, runs = load_and_expand(suite, [*overrides, *extra], profile)
    checked = check_suite(loaded, runs) if check else None
    scheduler = loaded.spec.scheduler
    try:
        check_backend(scheduler.backend, ray_address(scheduler))
    except BackendUnavailable as e:
        where = "--backend" if backend and e.key == "scheduler.backend" else str(loaded.path)
        raise SpecError(Loc(where, 0, e.key), str(e)) from None
    return Suite(loaded, runs, list(overrides), checked, name)


@dataclass
class ExpandedConfig:
    """`harness expand`: one distinct configuration, its runs and how many of them already FINISHED."""

    summary: ConfigSummary
    finished: int


def expand(suite: Suite, tracking_uri: str | None = None) -> list[ExpandedConfig]:
    """Per distinct configuration of a loaded suite: parameters, memory, dropped fields and the runs already
    finished in the store (a rerun skips them).  A sqlite store that does not exist is not created."""
    checked = suite.checked or check_suite(suite.loaded, suite.runs)
    uri = tracking_uri or default_uri()
    layout = StoreLayout.from_uri(uri)
    done: dict[str, str] = {}
    if layout.sqlite_db is None or layout.sqlite_db.exists():
        tracker = Tracker(uri)
        exp_id = tracker.experiment_id(suite.name)
        done = tracker.finished(exp_id) if exp_id else {}
    return [ExpandedConfig(c, sum(r.run_id in done for r in c.runs)) for c in checked.configs]


@dataclass
class Cost:
    """What one distinct configuration of a suite (its runs differ only in seed) needs per run."""

    label: str  # the runs' name without the seed
    runs: int
    steps: int
    estimate: Estimate


def costs(suite: Suite) -> list[Cost]:
    """harness.estimate for each distinct configuration of the suite's runs (before tuning), in run order."""
    groups: dict[str, list[RunSpec]] = {}
    for r in suite.runs:
        groups.setdefault(r.config.model_copy(update={"seed": 0}).canonical_json(), []).append(r)
    cache = EstimateCache()
    out = []
    for runs in groups.values():
        first = runs[0]
        label = " ".join(part for part in first.name.split(" ") if not part.startswith("seed=")) or "(defaults)"
        out.append(Cost(label, len(runs), first.config.training.steps, estimate(first.config, cache)))
    return out


def _console(console: Console | None) -> Console:
    return console or Console(stderr=True)


def _warm_for_trials(warm: WarmWorkers | None) -> None:
    if warm is not None:
        warm.preload(TRIAL_MODULES)


def _has_tuning(suite: Suite) -> bool:
    return bool(suite.loaded.spec.tune) or any(st.tune for st in suite.loaded.spec.stages.values())


TuneStage = Callable[[TuneScope, list[RunSpec], list[RunSpec]], tuple[list[RunSpec], list[StudySummary]]]


def _derive(suite: Suite, tune_scope: TuneStage) -> tuple[list[RunSpec], list[StudySummary]]:
    """The final runs, stage by stage: the suite's own runs through their tune blocks, then each later
    stage's runs derived from its (tuned) sources and put through its own blocks.  `tune_scope(scope,
    runs, upstream)` tunes (or applies the studies of) one stage's runs; `upstream` are the final runs
    of the stages before it (what a stage's trials start from)."""
    loaded = suite.loaded
    spec = loaded.spec
    own = [r for r in suite.runs if r.config.source is None]
    by_stage: dict[str, list[RunSpec]] = {}
    own, summaries = tune_scope(suite_scope(loaded), own, []) if spec.tune else (own, [])
    by_stage[spec.stage] = own
    for name, stage in spec.stages.items():
        runs = expand_stage(loaded, name, by_stage[stage.from_])
        if stage.tune:
            scope = TuneScope(name, tuple(stage.tune), ("stages", name), tuple(stage_seeds(loaded, name, runs)))
            runs, more = tune_scope(scope, runs, [r for rs in by_stage.values() for r in rs])
            summaries += more
        by_stage[name] = runs
    return [r for rs in by_stage.values() for r in rs], summaries


def _tuned_in_session(suite: Suite, tracker: Tracker, session: Session, pool: Pool, storage: str,
                      console: Console) -> tuple[list[RunSpec], list[StudySummary], list[SuiteOutcome]]:
    """Run the studies of every stage; a later stage's trials need their sources trained first, so the
    runs before such a stage are run before its studies.  Returns (final runs, summaries, outcomes of
    those earlier runs)."""
    outcomes: list[SuiteOutcome] = []

    def tune_scope(scope: TuneScope, runs: list[RunSpec], upstream: list[RunSpec]):
        if upstream:
            outcomes.append(run_suite(suite.loaded.spec, upstream, tracker, session, pool, console))
        return tune_suite(suite.loaded, runs, tracker, session, pool, storage, console, scope)

    runs, summaries = _derive(suite, tune_scope)
    _warn_untuned(summaries, console)
    return runs, summaries, outcomes


def tune(suite: Suite, tracking_uri: str | None = None, workers: int | None = None, storage: str | None = None,
         console: Console | None = None, warm: WarmWorkers | None = None) -> tuple[list[RunSpec], list[StudySummary]]:
    """Run (or resume) the suite's studies; returns the tuned runs and a summary per study (the studies
    of a later stage need the runs before it: those are trained first)."""
    tracker, console = Tracker(tracking_uri), _console(console)
    if not _has_tuning(suite):
        return suite.runs, []
    _warm_for_trials(warm)
    with _session(suite, tracker, console) as session, \
            make_pool(suite.loaded.spec.scheduler, workers, warm, session.store.log_dir(suite.name)) as pool:
        runs, summaries, _ = _tuned_in_session(suite, tracker, session, pool, storage or default_storage(tracker.uri), console)
        return runs, summaries


def _session(suite: Suite, tracker: Tracker, console: Console):
    return suite_session(suite.name, tracker, console, str(suite.loaded.path), suite.loaded.spec.description, _columns(suite))


def _columns(suite: Suite) -> list[str]:
    """The runs view's columns: the suite's axes (config paths that vary), then the metrics its claims and
    tables read (a prefix: the names its runs declare, when the dry build knows them)."""
    axes = [k for r in suite.runs for k in r.labels if k != "seed"]
    spec = suite.loaded.spec
    wanted = [c.check for c in spec.claims if c.check is not None]
    names = [m for t in spec.report.tables for m in [t.metric]]
    for check in wanted:
        for sub in getattr(check, "checks", [check]):
            names += [m for m in (sub.metric, *(getattr(sub, s).metric for s in ("a", "b") if hasattr(sub, s))) if m]
    declared = sorted(set().union(*suite.checked.metrics.values())) if suite.checked else []
    metrics = [d for n in names for d in ([n] if n in declared else [x for x in declared if x.startswith(n)]
                                          or ([] if n.endswith(("/", "_")) else [n]))]
    return view_columns(axes, [m for m in metrics if not m.startswith("items/")])


def run(suite: Suite, tracking_uri: str | None = None, workers: int | None = None, storage: str | None = None,
        reports_dir: Path | None = REPORTS_DIR, console: Console | None = None, warm: WarmWorkers | None = None,
        require_clean: bool = False, rerun_stale: bool = False, force: bool = False) -> RunResult:
    """Tune what the suite asks (finished studies are not rerun), train the runs not yet finished (with
    `rerun_stale`, also the stale ones: finished by code that has changed since; with `force`, every run),
    say which finished runs are stale when they are kept, add seeds where a claim asks for seeds until
    decided, then write the report under `reports_dir` (None: no report).  Raises DirtyTree with
    `require_clean` and uncommitted changes, SuiteBusy when a live orchestrator holds the suite,
    Interrupted on SIGINT / SIGTERM."""
    if require_clean:
        refuse_dirty()
    tracker, console = Tracker(tracking_uri), _console(console)
    spec = suite.loaded.spec
    storage = storage or default_storage(tracker.uri)
    with _session(suite, tracker, console) as session, \
            make_pool(spec.scheduler, workers, warm, session.store.log_dir(suite.name)) as pool:
        runs, summaries, earlier = suite.runs, [], []
        if _has_tuning(suite):
            _warm_for_trials(warm)
            runs, summaries, earlier = _tuned_in_session(suite, tracker, session, pool, storage, console)
        from harness.report.status import STALE, run_states

        stale = [s for s in run_states(suite.name, runs, tracker) if s.state == STALE]
        if stale and not (rerun_stale or force):
            console.print(f"[yellow]{len(stale)} finished runs are stale[/] ({stale[0].why}; e.g. {stale[0].run.name}): "
                          "kept; `harness run --rerun-stale` retrains them", highlight=False)
        again = frozenset(r.run_id for r in runs) if force else frozenset(s.run.run_id for s in stale) if rerun_stale else frozenset()
        outcome = run_suite(spec, runs, tracker, session, pool, console, again).after(earlier)
        for more in until_decided(suite, runs, tracker, session, pool, console):
            outcome.total += more.total
            for name in ("finished", "diverged", "failed", "killed", "skipped_after_failure"):
                getattr(outcome, name).extend(getattr(more, name))
            outcome.seconds += more.seconds
    result = _report(suite, runs, summaries, tracker, reports_dir) if reports_dir is not None else None
    return RunResult(outcome, runs, summaries, result)


def until_decided(suite: Suite, runs: list[RunSpec], tracker: Tracker, session: Session, pool: Pool,
                  console: Console) -> list[SuiteOutcome]:
    """Seeds until decided: while a claim with `until_decided` is INCONCLUSIVE, train `step` more seeds of the
    cells its check reads (up to its `max_seeds`), then check it again.  Returns the outcome of each round."""
    spec = suite.loaded.spec
    claims = [c for c in spec.claims if c.until_decided is not None]
    outcomes: list[SuiteOutcome] = []
    if claims:
        from harness.report import collect
        from harness.report.claims import INCONCLUSIVE
        from harness.report.seeds import claim_cells, extra_seed_runs
    while claims:
        results = collect(spec, suite.loaded.path, runs, tracker, suite.overrides, history_keys=[])
        more: dict[str, RunSpec] = {}
        verdicts = {v.claim.id: v for v in results.claims()}  # the whole family: Holm reads every claim
        for claim, verdict in ((c, verdicts[c.id]) for c in claims):
            cells = claim_cells(claim, results.frame)
            seeds = max((len({r.config.seed for r in results.runs if r.cell == c}) for c in cells), default=0)
            if verdict.status == INCONCLUSIVE and cells and seeds < claim.until_decided.max_seeds:
                n = min(seeds + claim.until_decided.step, claim.until_decided.max_seeds)
                more.update({r.run_id: r for r in extra_seed_runs(results.runs, cells, n)})
                console.print(f"claim {claim.id} INCONCLUSIVE at {seeds} seeds: adding seeds up to {n} ({verdict.measured})")
        todo = [r for r in more.values() if r.run_id not in {x.run_id for x in results.runs}]
        if not todo:
            return outcomes
        outcomes.append(run_suite(spec, todo, tracker, session, pool, console))
        if not outcomes[-1].ok:
            return outcomes
    return outcomes


def _stored_runs(suite: Suite, tracker: Tracker, storage: str | None, console: Console | None) -> tuple[list[RunSpec], list[StudySummary]]:
    """The final runs as the store's studies stand (a tuned cell's best params; nothing trained)."""
    if not _has_tuning(suite):
        return suite.runs, []
    stored = storage or default_storage(tracker.uri)
    runs, summaries = _derive(suite, lambda scope, rs, upstream: apply_studies(suite.loaded, rs, stored, scope))
    _warn_untuned(summaries, _console(console))
    return runs, summaries


def report(suite: Suite, tracking_uri: str | None = None, storage: str | None = None, reports_dir: Path = REPORTS_DIR,
           console: Console | None = None) -> ReportResult:
    """Rebuild `reports_dir/<suite>/` from the store (studies read as they stand, nothing trained)."""
    tracker = Tracker(tracking_uri)
    runs, summaries = _stored_runs(suite, tracker, storage, console)
    return _report(suite, runs, summaries, tracker, reports_dir)


def _warn_untuned(summaries: list[StudySummary], console: Console) -> None:
    missing = [f"{s.block}[{s.cell}]" for s in summaries if not s.done]
    if missing:
        console.print(f"[yellow]tuning not done[/] in {', '.join(missing)}: those runs keep the suite's values")


def _report(suite: Suite, runs: list[RunSpec], summaries: list[StudySummary], tracker: Tracker, reports_dir: Path) -> ReportResult:
    """Write reports_dir/<suite>/ (a profile's: <suite>.<profile>/) and log it to the suite's newest parent
    run, with the claims' verdicts as its tags and a link to report.html in its description; claims checked once."""
    from harness.report import collect
    from harness.report.tuning import tuning_section

    results = collect(suite.loaded.spec, suite.loaded.path, runs, tracker, suite.overrides)
    claims = results.claims()
    out_dir = reports_dir / suite.report_name
    path = results.write(out_dir, [tuning_section(summaries)] if _has_tuning(suite) else [], claims, suite.described)
    try:
        uri = tracker.log_report(suite.name, out_dir, results.parent)
    except TrackingError as e:
        return ReportResult(path, claims, None, f"report not logged to MLflow: {e}")
    parent = tracker.newest_parent(results.experiment_id or tracker.experiment_id(suite.name) or "")
    link = ""
    if parent is not None:
        exp = results.experiment_id or tracker.experiment_id(suite.name) or ""
        link = f"{ui_url(tracker.uri)}/#/experiments/{exp}/runs/{parent.mlflow_id}/artifacts/report/report.html"
        counts = ", ".join(f"{sum(c.status == s for c in claims)} {s}" for s in dict.fromkeys(c.status for c in claims))
        note = (f"{suite.loaded.spec.description.strip()}\n\n**Report**: [report/report.html](#/experiments/{exp}/runs/"
                f"{parent.mlflow_id}/artifacts/report/report.html)" + (f"; claims: {counts}." if claims else "."))
        tracker.set_tags(parent.mlflow_id, {Tag.NOTE: note, **{f"{Tag.CLAIM}{c.claim.id}": c.status for c in claims},
                                            **{f"{Tag.CLAIM}{c.claim.id}.measured": c.measured[:500] for c in claims if c.measured}})
    return ReportResult(path, claims, uri, ui_link=link)


def results(suite: Suite | str | Path, tracking_uri: str | None = None, history: bool = True, storage: str | None = None,
            overrides: Sequence[str] = ()) -> SuiteResults:
    """The suite's results from the store (`suite`: a loaded Suite, or a name in suites/ or a path, loaded with
    `overrides`): `.frame` (one row per run) and `.history` (every logged metric's points, run_id / metric / step
    / value, with `history`), polars frames; `.export(path, fmt)` writes both.  The one results function: the
    report, `harness results` and notebooks read this."""
    from harness.report import collect

    if not isinstance(suite, Suite):
        suite = load(suite, overrides, check=False)
    tracker = Tracker(tracking_uri)
    runs, _ = _stored_runs(suite, tracker, storage, None)
    return collect(suite.loaded.spec, suite.loaded.path, runs, tracker, suite.overrides, history_keys="all" if history else [])


def status(suite: Suite, tracking_uri: str | None = None, storage: str | None = None) -> list[RunState]:
    """Each run of the suite: finished / stale (finished by another commit) / failed / running / missing."""
    from harness.report.status import run_states

    tracker = Tracker(tracking_uri)
    runs, _ = _stored_runs(suite, tracker, storage, None)
    return run_states(suite.name, runs, tracker)
