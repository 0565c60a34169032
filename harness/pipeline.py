"""The documented Python API: what `harness run / tune / report` do, one function each.

    from harness import pipeline
    suite = pipeline.load("smoke", ["seeds=[0,1,2]"])          # find + validate + expand
    result = pipeline.run(suite, workers=2)                     # tune (if the suite asks) -> runs -> report
    result.outcome.failed, result.report.path, result.report.claims
    pipeline.report(suite).claims                               # rebuild the report from the store

    suite.yaml -> SuiteSpec -> [RunSpec] -> (tune: [RunSpec] with best params) -> pool -> worker -> MLflow -> report

One invocation holds one suite session (the lock, reaped orphans, signals) and one pool (warm workers or
Ray actors) for its tuning trials and its runs.  Claims are checked once, when the report is built."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from harness.backends import BackendUnavailable, WarmWorkers, check_backend, make_pool, ray_address
from harness.orchestrate import SuiteOutcome, run_suite
from harness.report import ClaimResult, collect
from harness.report.tuning import tuning_section
from harness.session import suite_session
from harness.spec import LoadedSuite, RunSpec, SpecError, load_and_expand
from harness.spec.errors import Loc
from harness.track import Tracker, TrackingError
from harness.tune.study import StudySummary, apply_studies, default_storage, tune_suite

REPORTS_DIR = Path("reports")


@dataclass
class Suite:
    """A loaded, validated and expanded suite (`runs`: the RunSpecs before tuning)."""

    loaded: LoadedSuite
    runs: list[RunSpec]
    overrides: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.loaded.spec.name


@dataclass
class ReportResult:
    path: Path  # report.md
    claims: list[ClaimResult]
    logged_to: str | None  # the MLflow artifact URI, or None when logging it failed (`warning` says why)
    warning: str = ""


@dataclass
class RunResult:
    outcome: SuiteOutcome
    runs: list[RunSpec]  # the final runs (tuned cells carry their best params)
    tuning: list[StudySummary]
    report: ReportResult | None


def load(suite: str | Path, overrides: Sequence[str] = (), backend: str | None = None) -> Suite:
    """Find (a name in the suite folders, or a path), load, validate and expand a suite.  `backend`
    overrides `scheduler.backend` (and is checked: a missing package or an unreachable cluster is a
    SpecError naming --backend or the suite's setting)."""
    extra = [f"scheduler.backend={backend}"] if backend else []
    loaded, runs = load_and_expand(suite, [*overrides, *extra])
    scheduler = loaded.spec.scheduler
    try:
        check_backend(scheduler.backend, ray_address(scheduler))
    except BackendUnavailable as e:
        where = "--backend" if backend and e.key == "scheduler.backend" else str(loaded.path)
        raise SpecError(Loc(where, 0, e.key), str(e)) from None
    return Suite(loaded, runs, list(overrides))


def _console(console: Console | None) -> Console:
    return console or Console(stderr=True)


def tune(suite: Suite, tracking_uri: str | None = None, workers: int | None = None, storage: str | None = None,
         console: Console | None = None, warm: WarmWorkers | None = None) -> tuple[list[RunSpec], list[StudySummary]]:
    """Run (or resume) the suite's studies; returns the tuned runs and a summary per study."""
    tracker, console = Tracker(tracking_uri), _console(console)
    if not suite.loaded.spec.tune:
        return suite.runs, []
    with suite_session(suite.name, tracker, console) as session, \
            make_pool(suite.loaded.spec.scheduler, workers, warm, session.store.log_dir(suite.name)) as pool:
        return tune_suite(suite.loaded, suite.runs, tracker, session, pool, storage or default_storage(tracker.uri), console)


def run(suite: Suite, tracking_uri: str | None = None, workers: int | None = None, storage: str | None = None,
        reports_dir: Path | None = REPORTS_DIR, console: Console | None = None, warm: WarmWorkers | None = None) -> RunResult:
    """Tune what the suite asks (finished studies are not rerun), train the runs not yet finished, then
    write the report under `reports_dir` (None: no report).  Raises SuiteBusy when a live orchestrator
    holds the suite, Interrupted on SIGINT / SIGTERM."""
    tracker, console = Tracker(tracking_uri), _console(console)
    spec = suite.loaded.spec
    storage = storage or default_storage(tracker.uri)
    with suite_session(suite.name, tracker, console) as session, \
            make_pool(spec.scheduler, workers, warm, session.store.log_dir(suite.name)) as pool:
        runs, summaries = suite.runs, []
        if spec.tune:
            runs, summaries = tune_suite(suite.loaded, suite.runs, tracker, session, pool, storage, console)
            _warn_untuned(summaries, console)
        outcome = run_suite(spec, runs, tracker, session, pool, console)
    result = _report(suite, runs, summaries, tracker, reports_dir) if reports_dir is not None else None
    return RunResult(outcome, runs, summaries, result)


def report(suite: Suite, tracking_uri: str | None = None, storage: str | None = None, reports_dir: Path = REPORTS_DIR,
           console: Console | None = None) -> ReportResult:
    """Rebuild `reports_dir/<suite>/` from the store (studies read as they stand, nothing trained)."""
    tracker = Tracker(tracking_uri)
    runs, summaries = suite.runs, []
    if suite.loaded.spec.tune:
        runs, summaries = apply_studies(suite.loaded, suite.runs, storage or default_storage(tracker.uri))
        _warn_untuned(summaries, _console(console))
    return _report(suite, runs, summaries, tracker, reports_dir)


def _warn_untuned(summaries: list[StudySummary], console: Console) -> None:
    missing = [f"{s.block}[{s.cell}]" for s in summaries if not s.done]
    if missing:
        console.print(f"[yellow]tuning not done[/] in {', '.join(missing)}: those runs keep the suite's values")


def _report(suite: Suite, runs: list[RunSpec], summaries: list[StudySummary], tracker: Tracker, reports_dir: Path) -> ReportResult:
    """Write reports_dir/<suite>/ and log it to the suite's newest parent run; claims checked once."""
    results = collect(suite.loaded.spec, suite.loaded.path, runs, tracker, suite.overrides)
    claims = results.claims()
    out_dir = reports_dir / suite.name
    path = results.write(out_dir, [tuning_section(summaries)] if suite.loaded.spec.tune else [], claims)
    try:
        return ReportResult(path, claims, tracker.log_report(suite.name, out_dir, results.parent))
    except TrackingError as e:
        return ReportResult(path, claims, None, f"report not logged to MLflow: {e}")
