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
    Console(width=160).print(table)
    return 0


def _report(loaded, runs, tracker, out_root: Path) -> Path:
    from harness.report import history_frame, history_metrics, results_frame, write_report

    exp = tracker.client.get_experiment_by_name(loaded.spec.name)
    records = tracker.results(exp.experiment_id, [r.run_id for r in runs]) if exp else []
    keys = history_metrics(loaded.spec)
    history = history_frame(records, {r.mlflow_id: tracker.history(r.mlflow_id, keys) for r in records}) if keys else None
    return write_report(loaded.spec, results_frame(records), out_root / loaded.spec.name, len(runs), history)


def cmd_run(args: argparse.Namespace) -> int:
    from harness.orchestrate import run_suite
    from harness.track import Tracker

    loaded, runs = _load(args.suite, args.overrides)
    tracker = Tracker(args.tracking_uri)
    console = Console(stderr=True)
    try:
        out = run_suite(loaded.spec, runs, tracker, workers=args.workers, console=console)
    except KeyboardInterrupt:
        console.print("[red]interrupted[/]: running workers stopped, their runs marked KILLED")
        return 130
    console.print(f"finished {len(out.finished)}, diverged {len(out.diverged)}, failed {len(out.failed)}, skipped (already finished) {out.skipped}")
    if not args.no_report:
        console.print(f"report: {_report(loaded, runs, tracker, Path(args.reports_dir))}")
    if out.failed:
        console.print("[red]failed runs:[/] " + "; ".join(out.failed))
        return 1
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from harness.track import Tracker

    loaded, runs = _load(args.suite, args.overrides)
    print(_report(loaded, runs, Tracker(args.tracking_uri), Path(args.reports_dir)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="harness", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("validate", help="validate suites (all of suites/ by default)")
    v.add_argument("suites", nargs="*")
    v.set_defaults(fn=cmd_validate)
    for name, fn, help_ in (("expand", cmd_expand, "print the runs a suite expands to"),
                            ("run", cmd_run, "run a suite (skips finished runs) and write its report"),
                            ("report", cmd_report, "write reports/<suite>/ from the tracking store")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("suite", help="suite name (suites/<name>.yaml) or path")
        p.add_argument("overrides", nargs="*", help="key.path=value overrides, re-validated")
        p.set_defaults(fn=fn)
        if name in ("run", "report"):
            p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default sqlite:///./mlflow.db)")
            p.add_argument("--reports-dir", default=str(REPORTS_DIR))
        if name == "run":
            p.add_argument("--workers", type=int, default=None, help="CPU worker processes (default: cores)")
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
