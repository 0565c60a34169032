"""`harness` command line: validate | expand | run | tune | report | results | status | ui.  Parsing, printing
and exit codes only: what each command does is harness.pipeline.

Exit codes: 0 ok; 1 failed runs (run) or a claim that FAILs or has NO DATA (report --check); 4 a claim
UNTESTABLE and none failed, 3 a claim INCONCLUSIVE and none failed or untestable (report --check); 2 bad input (one line `error: file:line: key.path: message`
on stderr, nothing written), a suite locked by a live orchestrator, or uncommitted changes with
--require-clean; 130 / 143 interrupted by SIGINT / SIGTERM (workers stopped, their runs marked KILLED)."""

from __future__ import annotations

import argparse
import atexit
import os
import sys
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.backends.warm import WarmWorkers
from harness.registry import did_you_mean
from harness.spec.errors import Loc, SpecError
from harness.spec.find import load_and_expand, suite_files
from harness.spec.models import BACKENDS
from harness.store import default_uri

REPORTS_DIR = Path("reports")
INCONCLUSIVE_EXIT = 3
UNTESTABLE_EXIT = 4
STORE_EXIT = 5  # the store (or the disk under it) cannot be read or written: one line, finished runs kept


def is_override(arg: str) -> bool:
    """An override in Hydra's grammar (key=value, +key=value, ++key=value, ~key), not a suite name or option."""
    return "=" in arg or arg.startswith("~")


def cmd_validate(args: argparse.Namespace) -> int:
    from harness import pipeline  # torch: the dry build

    overrides = [a for a in args.suites if is_override(a)]
    names = [a for a in args.suites if not is_override(a)] or [str(p) for p in suite_files()]
    bad = 0
    for name in names:
        try:
            suite = pipeline.load(name, overrides)
            params = sorted({c.resources.params for c in suite.checked.configs})
            shown = f"{params[0]:,}" + (f"-{params[-1]:,}" if len(params) > 1 else "")
            profiles = [f"{p} {len(load_and_expand(name, overrides, p)[1])} runs" for p in suite.loaded.spec.profiles]
            print(f"ok  {suite.loaded.path}: {len(suite.runs)} runs, {len(suite.checked.configs)} configurations built, "
                  f"{shown} parameters" + (f" (profiles, expanded: {', '.join(profiles)})" if profiles else ""))
            for w in suite.checked.warnings:
                print(f"warning: {w}", file=sys.stderr)
        except SpecError as e:
            print(f"error: {e}", file=sys.stderr)
            bad += 1
    return 2 if bad else 0


def cmd_list(args: argparse.Namespace) -> int:
    """Every kind of component with its names (and the suites); with KIND, each name with its summary."""
    from harness.plugins import load_plugins
    from harness.registry import ALL

    load_plugins()
    kinds = {**{k: r for k, r in ALL.items()}, **{f"{k}s": r for k, r in ALL.items()}}
    if args.kind is None:
        for kind, reg in ALL.items():
            print(f"{kind}: {', '.join(reg.names())}")
        print(f"suite: {', '.join(p.stem for p in suite_files())}")
        return 0
    if args.kind in ("suite", "suites"):
        for p in suite_files():
            print(f"{p.stem:<28} {p}")
        return 0
    if args.kind not in kinds:
        known = [*ALL, "suite"]
        print(f"error: unknown kind '{args.kind}'{did_you_mean(args.kind, known)} (kinds: {', '.join(known)})", file=sys.stderr)
        return 2
    reg = kinds[args.kind]
    for name in reg.names():
        print(f"{name:<20} {reg.summary(name)}")
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    """A component's parameters: type, default, description (from its pydantic config)."""
    from harness.plugins import load_plugins
    from harness.registry import ALL

    load_plugins()
    found = [(k, r) for k, r in ALL.items() if args.name in r and (args.kind is None or args.kind in (k, f"{k}s"))]
    if not found:
        names = sorted({n for r in ALL.values() for n in r.names()})
        print(f"error: no component '{args.name}'{did_you_mean(args.name, names)} (`harness list` shows them)", file=sys.stderr)
        return 2
    if len(found) > 1:
        print(f"error: '{args.name}' is a {' and a '.join(k for k, _ in found)}: say which with --kind", file=sys.stderr)
        return 2
    kind, reg = found[0]
    print(f"{kind} {args.name}: {reg.summary(args.name)}")
    table = Table(show_header=True)
    for col in ("parameter", "type", "default", "description"):
        table.add_column(col, overflow="fold")
    for f in reg.fields(args.name):
        table.add_row(f.name, f.type, f.default, f.description)
    Console(width=160).print(table)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """The resolved suite (includes merged, interpolations resolved, overrides and profile applied, validated)
    as YAML, as Hydra's --cfg job prints a composed config; with --run, one run's resolved config."""
    import yaml

    loaded, runs = load_and_expand(args.suite, args.overrides, args.profile)
    if args.run is None:
        data = loaded.spec.model_dump(mode="json", exclude_defaults=True, by_alias=True)
        print(f"# {loaded.path} ({len(runs)} runs){' with ' + ' '.join(args.overrides) if args.overrides else ''}")
    else:
        run = next((r for i, r in enumerate(runs) if args.run in (r.run_id, str(i))), None)
        if run is None:
            print(f"error: no run '{args.run}' (a run_id of `harness expand`, or an index 0..{len(runs) - 1})", file=sys.stderr)
            return 2
        data = run.config.model_dump(mode="json")
        print(f"# run {run.run_id}: {run.name}")
    print(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120), end="")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Two variants of a suite (overrides, or two stores: two code versions) side by side, cell by cell."""
    from harness import pipeline
    from harness.report.compare import compare, write_comparison

    a = pipeline.load(args.suite, args.overrides, profile=args.profile, check=False)
    b = pipeline.load(args.suite, [*args.overrides, *(args.b or [])], profile=args.profile, check=False)
    uri_b = args.b_tracking_uri or args.tracking_uri
    ra, rb = pipeline.results(a, args.tracking_uri, history=False), pipeline.results(b, uri_b, history=False)
    label_a = " ".join(args.overrides) or "the suite as written"
    label_b = " ".join([*args.overrides, *(args.b or [])]) + (f" (store {uri_b})" if args.b_tracking_uri else "")
    sections = compare(ra, rb, label_a or "A", label_b or "B")
    path = write_comparison(sections, Path(args.reports_dir) / f"{a.report_name}--vs--{b.report_name}",
                            f"{a.name}: B vs A", [f"A: {label_a}", f"B: {label_b or label_a}"])
    for s in sections:
        print(f"## {s.title}\n\n{s.markdown()}\n\n{s.note}\n")
    print(path)
    return 0


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**27 else f"{n / 2**20:.1f} MiB"


def _print_configs(console: Console, rows) -> None:
    """Per distinct configuration: its runs, parameters, memory, dropped fields, runs finished (skipped)."""
    table = Table(title="distinct configurations (seeds together)")
    for col in ("configuration", "runs", "parameters", "memory", "dropped (not in the new component)", "finished (skipped)"):
        table.add_column(col)
    for row in rows:
        c = row.summary
        r = c.resources
        name = " ".join(p for p in c.runs[0].name.split() if not p.startswith("seed=")) or "(defaults)"
        table.add_row(name, str(len(c.runs)), f"{r.params:,}", f"{_gib(r.device_bytes)} ({r.device})", ", ".join(c.dropped) or "-",
                      f"{row.finished}/{len(c.runs)}")
    console.print(table)


def _si(x: float, unit: str) -> str:
    for scale, prefix in ((1e21, "Z"), (1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {prefix}{unit}"
    return f"{x:.3g} {unit}"


def print_costs(suite, console: Console) -> None:
    """Per distinct configuration: parameters, FLOPs per step and per run, memory (harness.estimate)."""
    from harness import pipeline

    table = Table(title="cost per run (harness.estimate: matmul FLOPs of forward + backward; memory = weights, grads, "
                        "optimizer state, activations of one micro-batch)")
    for col in ("configuration", "runs", "params", "FLOPs / step", "steps", "FLOPs / run", "memory"):
        table.add_column(col, justify="left" if col == "configuration" else "right")
    from harness.validate.resources import host_memory

    total, host, too_big = 0.0, host_memory(), 0
    for c in pipeline.costs(suite):
        e = c.estimate
        total += e.total_flops(c.steps) * c.runs
        too_big += e.memory_bytes > host
        table.add_row(c.label, str(c.runs), f"{e.params:,}", _si(e.flops_per_step, "FLOP"), f"{c.steps:,}",
                      _si(e.total_flops(c.steps), "FLOP"), _si(e.memory_bytes, "B"))
    console.print(table)
    console.print(f"all runs: {_si(total, 'FLOP')} of training (tuning trials and evaluation not included)")
    if too_big:
        console.print(f"[bold]not runnable on this machine[/bold]: {too_big} configurations need more than its "
                      f"{_si(host, 'B')} of memory (a GPU's: see its memory column)", markup=True, highlight=False)


def cmd_expand(args: argparse.Namespace) -> int:
    from harness import pipeline  # torch: the dry build gives the parameter counts

    sizing = bool(args.profile or args.estimate)  # sizing a (GPU) job: a run too large for this machine is shown, not refused
    suite = pipeline.load(args.suite, args.overrides, profile=args.profile, check=not sizing)
    loaded, runs = suite.loaded, suite.runs
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
    if not sizing:  # the configurations as validated here (their dry build); sizing: one estimator, the cost table
        _print_configs(console, pipeline.expand(suite, args.tracking_uri))
    if loaded.dropped:
        console.print("dropped while loading (a component's name was switched): " + ", ".join(loaded.dropped))
    if sizing:
        print_costs(suite, console)
    return 0


def _print_report(result) -> None:
    for c in result.claims:
        print(f"claim {c.status:<12} {c.claim.id}" + (f": {c.measured}" if c.measured else ""), file=sys.stderr)
    print(f"report logged to MLflow: {result.logged_to}" if result.logged_to else f"warning: {result.warning}", file=sys.stderr)
    if result.ui_link:
        print(f"report in the MLflow UI (harness ui): {result.ui_link}", file=sys.stderr)


def _print_tuning(summaries) -> None:
    from harness.report.tuning import summary_line

    for s in summaries:
        print(summary_line(s), file=sys.stderr)


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
        from harness.provenance import DirtyTree
        from harness.session import Interrupted
        from harness.state import SuiteBusy

        suite = pipeline.load(args.suite, args.overrides, args.backend, args.profile, name=getattr(args, "name", "") or "")
        try:
            return body(pipeline, suite, warm)
        except (SuiteBusy, DirtyTree) as e:
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
        result = pipeline.run(suite, args.tracking_uri, args.workers, args.storage, reports, console, warm,
                              require_clean=args.require_clean, rerun_stale=args.rerun_stale, force=getattr(args, "force", False))
        out = result.outcome
        console.print(f"finished {len(out.finished)}, diverged {len(out.diverged)}, failed {len(out.failed)}, "
                      f"skipped (already finished) {out.skipped}" + (f"; runs took {out.seconds:.1f} s" if out.seconds else ""))
        _print_tuning(result.tuning)
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
        _, summaries = pipeline.tune(suite, args.tracking_uri, args.workers, args.storage, Console(stderr=True), warm)
        _print_tuning(summaries)
        return 0

    return _executing(args, body, "running trials stopped and marked FAIL; rerun to resume the studies")


def cmd_report(args: argparse.Namespace) -> int:
    from harness import pipeline

    suite = pipeline.load(args.suite, args.overrides, profile=args.profile, name=args.name or "")
    console = Console(stderr=True)
    result = pipeline.report(suite, args.tracking_uri, args.storage, Path(args.reports_dir), console)
    _print_report(result)
    print(result.path)
    failed = [f"{c.claim.id} ({c.status})" for c in result.claims if c.failed]
    undecided = [c.claim.id for c in result.claims if c.inconclusive]
    untestable = [c.claim.id for c in result.claims if c.untestable]
    if args.check and failed:
        print(f"claims failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    if args.check and untestable:
        print(f"claims untestable: {', '.join(untestable)} (the reference arms leave no room to tell the arms apart)", file=sys.stderr)
        return UNTESTABLE_EXIT
    if args.check and undecided:
        print(f"claims inconclusive: {', '.join(undecided)} (more seeds would decide them)", file=sys.stderr)
        return INCONCLUSIVE_EXIT
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    from harness import pipeline

    suite = pipeline.load(args.suite, args.overrides)
    res = pipeline.results(suite, args.tracking_uri, storage=args.storage)
    out = Path(args.out or f"{suite.name}_results.{args.format}")
    for path in res.export(out, args.format):
        print(path)
    print(f"{res.frame.height} runs with results of {res.n_expected}; "
          f"{0 if res.history is None else res.history.height} history points", file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from harness import pipeline
    from harness.report.status import summary

    suite = pipeline.load(args.suite, args.overrides)
    states = pipeline.status(suite, args.tracking_uri, args.storage)
    table = Table(title=f"{suite.name}: {summary(states)}")
    for col in ("state", "run", "run_id", "commit", "why stale"):
        table.add_column(col)
    for st in states:
        table.add_row(st.state, st.run.name, st.run.run_id, st.commit[:12], st.why)
    Console(width=160).print(table)
    if args.rerun_stale:
        args.backend, args.require_clean, args.no_report = None, False, False
        return cmd_run(args)
    return 0


def _version() -> str:
    """`harness <package version> (<checkout commit>[, uncommitted changes])` (no git call unless asked: lazy)."""
    from importlib.metadata import PackageNotFoundError, version

    from harness.provenance import code_version

    try:
        pkg = version("harness")
    except PackageNotFoundError:
        pkg = "unknown"
    return f"harness {pkg} ({code_version().described})"


class _Version(argparse.Action):
    """--version: computed when asked (it reads git), not on every start-up."""

    def __init__(self, option_strings, dest, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(_version())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="harness", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action=_Version, help="print the harness's version and its checkout's commit")
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("validate", help="validate suites (all of the suite folders by default): load, expand, build each "
                                         "distinct task/model/method once, check every metric named")
    v.add_argument("suites", nargs="*", help="suite names or paths, and overrides (applied to each)")
    v.set_defaults(fn=cmd_validate)
    ls = sub.add_parser("list", help="list the registered components of a kind (task, model, method, probe, ...), or suites")
    ls.add_argument("kind", nargs="?", default=None, help="a kind (e.g. task, probe, suite); none: every kind with its names")
    ls.set_defaults(fn=cmd_list)
    d = sub.add_parser("describe", help="a component's parameters: type, default, description")
    d.add_argument("name", help="a registered name, e.g. jepa, linear, shapes")
    d.add_argument("--kind", default=None, help="the kind, where two kinds share the name (e.g. method, probe)")
    d.set_defaults(fn=cmd_describe)
    c = sub.add_parser("compare", help="two variants of a suite side by side: each table's cells, B - A paired by seed")
    c.add_argument("suite", help="suite name (suites/<name>.yaml) or path")
    c.add_argument("overrides", nargs="*", help="overrides of both variants (A is the suite with these)")
    c.add_argument("--b", nargs="+", default=None, help="the overrides B adds to A's (e.g. --b optimizer.lr=0.01)")
    c.add_argument("--b-tracking-uri", default=None, help="read B from this store (two code versions: each run into its own store)")
    c.add_argument("--tracking-uri", default=None, help="A's store (default $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db)")
    c.add_argument("--profile", default=None, help="apply the suite's profile NAME to both")
    c.add_argument("--reports-dir", default=str(REPORTS_DIR), help="the comparison goes to <dir>/<A>--vs--<B>/compare.md")
    c.set_defaults(fn=cmd_compare)
    sh = sub.add_parser("show", help="print the resolved suite (or one run's config) as YAML, as Hydra's --cfg job")
    sh.add_argument("suite", help="suite name (suites/<name>.yaml) or path")
    sh.add_argument("overrides", nargs="*", help="overrides in Hydra's grammar, applied and validated first")
    sh.add_argument("--profile", default=None, help="apply the suite's profile NAME first")
    sh.add_argument("--run", default=None, help="print this run's resolved config instead (a run_id, or an index in `harness expand`)")
    sh.set_defaults(fn=cmd_show)
    from harness.ui import add_parser as add_ui_parser

    add_ui_parser(sub)
    for name, fn, help_ in (("expand", cmd_expand, "print the runs a suite expands to"),
                            ("run", cmd_run, "run a suite (skips finished runs) and write its report"),
                            ("tune", cmd_tune, "run the suite's tune blocks (Optuna studies; resumes)"),
                            ("report", cmd_report, "write reports/<suite>/ from the tracking store"),
                            ("results", cmd_results, "export the suite's results (runs and metric histories) as parquet or csv"),
                            ("status", cmd_status, "per run: finished / stale (another commit) / failed / running / missing")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("suite", help="suite name (suites/<name>.yaml) or path")
        p.add_argument("overrides", nargs="*", help="overrides in Hydra's grammar (key=value, +key=value, ~key, key=a,b sweeps), re-validated")
        p.set_defaults(fn=fn)
        p.add_argument("--profile", default=None, help="apply the suite's profile NAME (its `profiles:`) to every run")
        if name == "expand":
            p.add_argument("--estimate", action="store_true", help="print each configuration's parameters, FLOPs and memory "
                                                                   "(always with --profile)")
        if name in ("run", "tune", "report", "expand", "results", "status"):
            p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db)")
        if name in ("run", "tune", "report", "results", "status"):
            p.add_argument("--storage", default=None, help="Optuna storage URL or journal file (default: optuna-journal.log next to the MLflow store)")
            p.add_argument("--reports-dir", default=str(REPORTS_DIR), help="where reports/<suite>/ is written (default: ./reports)")
        if name in ("run", "report"):
            p.add_argument("--name", default=None, help="name a variant (a run with overrides): its report goes to "
                           "reports/<suite>+<name>/ (default: +<hash of the overrides>; the suite as written: reports/<suite>/)")
        if name == "report":
            p.add_argument("--check", action="store_true", help="exit 1 when a claim FAILs or has NO DATA, else 4 when one is "
                           "UNTESTABLE, else 3 when one is INCONCLUSIVE (for CI)")
        if name == "results":
            p.add_argument("--out", default=None, help="the runs table's file (default <suite>_results.<format>); histories go to <stem>.history.<ext>")
            p.add_argument("--format", choices=("parquet", "csv"), default="parquet", help="file format of the export (default parquet)")
        if name == "status":
            p.add_argument("--rerun-stale", action="store_true", help="then rerun the stale runs (harness run --rerun-stale)")
            p.add_argument("--workers", type=int, default=None, help="CPU worker processes for --rerun-stale (default: cores)")
        if name in ("run", "tune"):
            p.add_argument("--workers", type=int, default=None, help="CPU worker processes (default: cores)")
            p.add_argument("--backend", choices=BACKENDS, default=None, help="where runs execute (default: the suite's scheduler.backend, else local)")
        if name == "run":
            p.add_argument("--no-report", action="store_true", help="train only: do not write the report at the end")
            p.add_argument("--require-clean", action="store_true", help="refuse to run when the harness checkout has uncommitted changes")
            p.add_argument("--rerun-stale", action="store_true", help="also retrain the stale runs: finished by code (the "
                           "component packages, the training loop) that has changed since, committed or not")
            p.add_argument("--force", action="store_true", help="retrain every run of the suite, finished or not")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args, rest = ap.parse_known_args(argv)  # overrides may come after options too
    stray = [r for r in rest if r.startswith("--") or not is_override(r) or not hasattr(args, "overrides")]
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
    except Exception as e:
        why = _store_failure(e, getattr(args, "tracking_uri", None))
        if why is None:
            raise
        print(f"error: {why}", file=sys.stderr)
        return STORE_EXIT


def _store_failure(e: Exception, uri: str | None) -> str | None:
    """The one line for a store that failed (harness.track.failures), imported only when something failed."""
    if uri is None or "harness.track" not in sys.modules:  # the store was never opened: not the store's failure
        return None
    from harness.track import store_failure

    return store_failure(e, uri)


def entry() -> None:
    """The `harness` command: main(), then the exit handlers and a flush of stdout and stderr, then the end of
    the process without the interpreter's teardown of its modules (torch's and mlflow's: ~2.5 s, measured
    after a smoke run, for nothing: the store's writes are committed, no thread is left, the warm workers
    are closed).  The warm process ends the same way (harness.backends.warm.main)."""
    code = main()
    atexit._run_exitfuncs()  # what a normal exit runs before the teardown (Ray's shutdown, logging's flush)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
