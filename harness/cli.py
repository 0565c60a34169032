"""`harness` command line: validate | expand | run | tune | report | ui.  Parsing, printing and exit codes
only: what each command does is harness.pipeline.

Exit codes: 0 ok; 1 failed runs (run) or failed claims (report --check); 2 bad input (one line
`error: file:line: key.path: message` on stderr, nothing written) or a suite locked by a live
orchestrator; 130 / 143 interrupted by SIGINT / SIGTERM (workers stopped, their runs marked KILLED)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.backends.warm import WarmWorkers
from harness.spec.errors import Loc, SpecError
from harness.spec.find import load_and_expand, suite_files
from harness.spec.models import BACKENDS
from harness.store import default_uri

REPORTS_DIR = Path("reports")


def cmd_validate(args: argparse.Namespace) -> int:
    names = args.suites or [str(p) for p in suite_files()]
    bad = 0
    for name in names:
        try:
            loaded, runs = load_and_expand(name)
            print(f"ok  {loaded.path}: {len(runs)} runs")
        except SpecError as e:
            print(f"error: {e}", file=sys.stderr)
            bad += 1
    return 2 if bad else 0


def cmd_expand(args: argparse.Namespace) -> int:
    loaded, runs = load_and_expand(args.suite, args.overrides)
    staged = bool(loaded.spec.stages)
    table = Table(title=f"{loaded.spec.name}: {len(runs)} runs")
    for col in ("run_id", *(("stage", "from (run_id)") if staged else ()), "ablation", "run"):
        table.add_column(col)
    for r in runs:
        table.add_row(r.run_id, *((r.stage, r.config.source.run_id if r.config.source else "") if staged else ()), r.ablation, r.name)
    console = Console(width=160)
    console.print(table)
    if staged:
        counts = {s: sum(r.stage == s for r in runs) for s in (loaded.spec.stage, *loaded.spec.stages)}
        order = [f"{loaded.spec.stage} ({counts[loaded.spec.stage]} runs)"]
        order += [f"{n} <- {st.from_} ({counts[n]} runs)" for n, st in loaded.spec.stages.items()]
        console.print("stages: " + ", ".join(order) + "; a stage run starts as soon as its source run has finished")
    for block in loaded.spec.tune:
        console.print(f"tune block '{block.name}': {', '.join(block.space)} of these runs are replaced by each cell's best "
                      f"params ({block.trials} trials per {' x '.join(block.per) or 'suite'} cell) when the suite runs")
    return 0


def _print_report(result) -> None:
    for c in result.claims:
        print(f"claim {c.status:<11} {c.claim.id}" + (f": {c.measured}" if c.measured else ""), file=sys.stderr)
    print(f"report logged to MLflow: {result.logged_to}" if result.logged_to else f"warning: {result.warning}", file=sys.stderr)


def _warm_start(args: argparse.Namespace) -> WarmWorkers | None:
    """Start the warm worker process now, before this process imports torch and mlflow, so that both
    import at once; not for Ray (its actors have their own).  Its log goes to a temp file until a run
    needs it (nothing is written next to the store before the suite validates)."""
    if args.backend not in (None, "local"):
        return None
    return WarmWorkers.temporary_log().start()


def _executing(args: argparse.Namespace, body: Callable[..., int], what_stopped: str) -> int:
    """Load the suite (with --backend) and run `body(suite, warm)` -> exit code: a suite locked by a live
    orchestrator is exit 2; SIGINT / SIGTERM exit 130 / 143 once the workers are stopped and their runs marked."""
    warm = _warm_start(args)
    try:
        from harness import pipeline  # torch, mlflow and the plugins: after the warm process started
        from harness.session import Interrupted
        from harness.state import SuiteBusy

        suite = pipeline.load(args.suite, args.overrides, args.backend)
        try:
            return body(pipeline, suite, warm)
        except SuiteBusy as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as e:
            Console(stderr=True).print(f"[red]interrupted[/]: {what_stopped}")
            return e.exit_code if isinstance(e, Interrupted) else 130
    finally:
        if warm is not None:
            warm.close()


def cmd_run(args: argparse.Namespace) -> int:
    def body(pipeline, suite, warm) -> int:
        console = Console(stderr=True)
        reports = None if args.no_report else Path(args.reports_dir)
        result = pipeline.run(suite, args.tracking_uri, args.workers, args.storage, reports, console, warm)
        out = result.outcome
        console.print(f"finished {len(out.finished)}, diverged {len(out.diverged)}, failed {len(out.failed)}, "
                      f"skipped (already finished) {out.skipped}" + (f"; runs took {out.seconds:.1f} s" if out.seconds else ""))
        if result.report is not None:
            _print_report(result.report)
            console.print(f"report: {result.report.path}")
        if out.failed:
            console.print("[red]failed runs:[/] " + "; ".join(out.failed))
            return 1
        return 0

    return _executing(args, body, "running workers stopped, their runs marked KILLED")


def cmd_tune(args: argparse.Namespace) -> int:
    def body(pipeline, suite, warm) -> int:
        if not suite.loaded.spec.tune:
            raise SpecError(Loc(str(suite.loaded.path), 0, "tune"), "this suite declares no tune blocks")
        pipeline.tune(suite, args.tracking_uri, args.workers, args.storage, Console(stderr=True), warm)
        return 0

    return _executing(args, body, "running trials stopped and marked FAIL; rerun to resume the studies")


def cmd_report(args: argparse.Namespace) -> int:
    from harness import pipeline

    suite = pipeline.load(args.suite, args.overrides)
    console = Console(stderr=True)
    result = pipeline.report(suite, args.tracking_uri, args.storage, Path(args.reports_dir), console)
    _print_report(result)
    print(result.path)
    failed = [f"{c.claim.id} ({c.status})" for c in result.claims if c.failed]
    if args.check and failed:
        print(f"claims failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="harness", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("validate", help="validate suites (all of the suite folders by default)")
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
            p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db)")
            p.add_argument("--storage", default=None, help="Optuna storage URL or journal file (default: optuna-journal.log next to the MLflow store)")
            p.add_argument("--reports-dir", default=str(REPORTS_DIR))
        if name == "report":
            p.add_argument("--check", action="store_true", help="exit 1 when a claim FAILs or has NO DATA (for CI)")
        if name in ("run", "tune"):
            p.add_argument("--workers", type=int, default=None, help="CPU worker processes (default: cores)")
            p.add_argument("--backend", choices=BACKENDS, default=None, help="where runs execute (default: the suite's scheduler.backend, else local)")
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
    if getattr(args, "tracking_uri", "unset") is None:
        args.tracking_uri = default_uri()
    try:
        return args.fn(args)
    except SpecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
