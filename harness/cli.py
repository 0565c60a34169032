"""`harness` command line: validate | expand | run | report.

Bad input: one line `error: file:line: key.path: message` on stderr, exit code 2, nothing written."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.registry import did_you_mean
from harness.spec.errors import Loc, SpecError

SUITES_DIR = Path("suites")
REPORTS_DIR = Path("reports")


def suite_path(name: str) -> Path:
    p = Path(name)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise SpecError(Loc(str(p), 0, ""), "suite file not found")
        return p
    cand = SUITES_DIR / f"{name}.yaml"
    if not cand.exists():
        known = sorted(q.stem for q in SUITES_DIR.glob("*.yaml"))
        raise SpecError(Loc(str(cand), 0, ""), f"unknown suite '{name}'{did_you_mean(name, known)} (known: {', '.join(known)})")
    return cand


def _load(name: str, overrides: list[str]):
    from harness.plugins import load_plugins
    from harness.spec import expand, load_suite

    load_plugins()
    loaded = load_suite(suite_path(name), overrides)
    return loaded, expand(loaded)


def cmd_validate(args: argparse.Namespace) -> int:
    names = args.suites or [str(p) for p in sorted(SUITES_DIR.glob("*.yaml"))]
    bad = 0
    for name in names:
        try:
            loaded, runs = _load(name, [])
            print(f"ok  {loaded.path}: {len(runs)} runs")
        except SpecError as e:
            print(f"error: {e}", file=sys.stderr)
            bad += 1
    return 2 if bad else 0


def cmd_expand(args: argparse.Namespace) -> int:
    loaded, runs = _load(args.suite, args.overrides)
    table = Table(title=f"{loaded.spec.name}: {len(runs)} runs")
    for col in ("run_id", "ablation", "run"):
        table.add_column(col)
    for r in runs:
        table.add_row(r.run_id, r.ablation, r.name)
    console = Console(width=160)
    console.print(table)
    for block in loaded.spec.tune:
        console.print(f"tune block '{block.name}': {', '.join(block.space)} of these runs are replaced by each cell's best "
                      f"params ({block.trials} trials per {' x '.join(block.per) or 'suite'} cell) when the suite runs")
    return 0


def _report(loaded, runs, tracker, out_root: Path, overrides=(), sections=()):
    """Write reports/<suite>/ from the tracking store, log it to the suite's newest parent run, print
    the claim verdicts (stderr).  Returns (report.md path, claim results).  `sections`: extra tables
    (harness.report.Section) shown after the figures."""
    from harness.report import check_claims, collect
    from harness.track import TrackingError

    results = collect(loaded.spec, loaded.path, runs, tracker, overrides)
    out_dir = out_root / loaded.spec.name
    path = results.write(out_dir, sections)
    claims = check_claims(loaded.spec.claims, results.frame)
    for c in claims:
        print(f"claim {c.status:<11} {c.claim.id}" + (f": {c.measured}" if c.measured else ""), file=sys.stderr)
    try:
        print(f"report logged to MLflow: {tracker.log_report(loaded.spec.name, out_dir)}", file=sys.stderr)
    except TrackingError as e:
        print(f"warning: report not logged to MLflow: {e}", file=sys.stderr)
    return path, claims


def _load_to_execute(args: argparse.Namespace):
    """`_load` with `--backend` applied (it overrides the suite's) and the backend checked: a missing
    package or an unreachable cluster is a one-line error, exit 2, before anything is written."""
    from harness.backends import BackendUnavailable, check_backend, ray_address

    backend = [f"scheduler.backend={args.backend}"] if args.backend else []
    loaded, runs = _load(args.suite, [*args.overrides, *backend])
    try:
        check_backend(loaded.spec.scheduler.backend, ray_address(loaded.spec.scheduler))
    except BackendUnavailable as e:
        where = "--backend" if args.backend and e.key == "scheduler.backend" else str(loaded.path)
        raise SpecError(Loc(where, 0, e.key), str(e)) from None
    return loaded, runs


def _stoppable(body, what_stopped: str) -> int:
    """Run `body()` (-> exit code): a suite locked by a live orchestrator is exit 2; SIGINT / SIGTERM
    exit 130 / 143 once the workers are stopped and their runs marked."""
    from harness.orchestrate import Interrupted
    from harness.state import SuiteBusy

    try:
        return body()
    except SuiteBusy as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        Console(stderr=True).print(f"[red]interrupted[/]: {what_stopped}")
        return e.exit_code if isinstance(e, Interrupted) else 130


def cmd_run(args: argparse.Namespace) -> int:
    from harness.orchestrate import run_suite
    from harness.track import Tracker

    loaded, runs = _load_to_execute(args)
    tracker = Tracker(args.tracking_uri)
    console = Console(stderr=True)

    def body() -> int:
        final, sections = _tune(loaded, runs, tracker, args, console)
        out = run_suite(loaded.spec, final, tracker, workers=args.workers, console=console)
        console.print(f"finished {len(out.finished)}, diverged {len(out.diverged)}, failed {len(out.failed)}, skipped (already finished) {out.skipped}")
        if not args.no_report:
            console.print(f"report: {_report(loaded, final, tracker, Path(args.reports_dir), args.overrides, sections)[0]}")
        if out.failed:
            console.print("[red]failed runs:[/] " + "; ".join(out.failed))
            return 1
        return 0

    return _stoppable(body, "running workers stopped, their runs marked KILLED")


def _storage(args: argparse.Namespace, tracker) -> str:
    from harness.tune import default_storage

    return args.storage or default_storage(tracker.uri)


def _tune(loaded, runs, tracker, args, console, run_trials: bool = True):
    """(final runs, report sections): the suite's runs with each tuned cell's best params.  With
    `run_trials` the studies are run (or resumed) first; without, they are read as they stand."""
    if not loaded.spec.tune:
        return runs, []
    from harness.tune import apply_studies, tune_suite, tuning_section

    storage = _storage(args, tracker)
    if run_trials:
        runs, summaries = tune_suite(loaded, runs, tracker, storage, workers=args.workers, console=console)
    else:
        runs, summaries = apply_studies(loaded, runs, storage)
    missing = [f"{s.block}[{s.cell}]" for s in summaries if not s.done]
    if missing:
        console.print(f"[yellow]tuning not done[/] in {', '.join(missing)}: those runs keep the suite's values")
    return runs, [tuning_section(summaries)]


def cmd_tune(args: argparse.Namespace) -> int:
    from harness.track import Tracker

    loaded, runs = _load_to_execute(args)
    if not loaded.spec.tune:
        raise SpecError(Loc(str(loaded.path), 0, "tune"), "this suite declares no tune blocks")

    def body() -> int:
        _tune(loaded, runs, Tracker(args.tracking_uri), args, Console(stderr=True))
        return 0

    return _stoppable(body, "running trials stopped and marked FAIL; rerun to resume the studies")


def cmd_report(args: argparse.Namespace) -> int:
    from harness.track import Tracker

    loaded, runs = _load(args.suite, args.overrides)
    tracker = Tracker(args.tracking_uri)
    runs, sections = _tune(loaded, runs, tracker, args, Console(stderr=True), run_trials=False)
    path, claims = _report(loaded, runs, tracker, Path(args.reports_dir), args.overrides, sections)
    print(path)
    failed = [f"{c.claim.id} ({c.status})" for c in claims if c.failed]
    if args.check and failed:
        print(f"claims failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="harness", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("validate", help="validate suites (all of suites/ by default)")
    v.add_argument("suites", nargs="*")
    v.set_defaults(fn=cmd_validate)
    from harness.ui import add_parser as add_ui_parser

    add_ui_parser(sub)
    for name, fn, help_ in (("expand", cmd_expand, "print the runs a suite expands to"),
                            ("run", cmd_run, "run a suite (skips finished runs) and write its report"),
                            ("tune", cmd_tune, "run the suite's tune blocks (Optuna studies; resumes)"),
                            ("report", cmd_report, "write reports/<suite>/ from the tracking store")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("suite", help="suite name (suites/<name>.yaml) or path")
        p.add_argument("overrides", nargs="*", help="key.path=value overrides, re-validated")
        p.set_defaults(fn=fn)
        if name in ("run", "tune", "report"):
            p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default sqlite:///./mlflow.db)")
            p.add_argument("--storage", default=None, help="Optuna storage URL or journal file (default: optuna-journal.log next to the MLflow store)")
            p.add_argument("--reports-dir", default=str(REPORTS_DIR))
        if name == "report":
            p.add_argument("--check", action="store_true", help="exit 1 when a claim FAILs or has NO DATA (for CI)")
        if name in ("run", "tune"):
            p.add_argument("--workers", type=int, default=None, help="CPU worker processes (default: cores)")
            p.add_argument("--backend", choices=["local", "ray"], default=None, help="where runs execute (default: the suite's scheduler.backend, else local)")
        if name == "run":
            p.add_argument("--no-report", action="store_true")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args, rest = ap.parse_known_args(argv)  # overrides may come after options too
    stray = [r for r in rest if r.startswith("-") or "=" not in r or not hasattr(args, "overrides")]
    if stray:
        ap.error(f"unrecognized arguments: {' '.join(stray)}")
    if rest:
        args.overrides = [*args.overrides, *rest]
    try:
        return args.fn(args)
    except SpecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
