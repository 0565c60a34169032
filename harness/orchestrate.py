"""Run a suite: tracker set-up in the parent, skip finished runs, schedule the rest over slots,
record every outcome.  A failing run never takes the suite down.

Fault tolerance: the suite's lock (harness.state) is held for the whole invocation, so runs found
RUNNING on start belong to a dead orchestrator: they are marked KILLED (outcome=orphaned) and redone.
SIGINT and SIGTERM stop the workers, mark their runs and the parent KILLED and exit 130 / 143 (cli).
A run whose worker fails or dies is retried (a new child run, tag `attempt`) up to
`scheduler.max_retries` times, resuming from its last checkpoint when it has one."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from harness.backends import make_pool
from harness.sched import Job, make_slots, visible_gpus
from harness.spec.models import RunSpec, SuiteSpec
from harness.state import SuiteLock, state_dir
from harness.track import TERMINAL, Tracker, environment_tags, git_sha
from harness.worker import worker_command

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM reached the orchestrator; the CLI exits with `exit_code` (128 + signal)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.exit_code = 128 + signum


@contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """While inside: SIGINT and SIGTERM raise Interrupted (once; later ones are ignored while the
    clean-up runs).  Only the main thread can install handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        raise Interrupted(signum)

    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    for s in STOP_SIGNALS:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@dataclass
class SuiteOutcome:
    total: int
    skipped: int
    finished: list[str] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # run names
    killed: list[str] = field(default_factory=list)
    parent_id: str = ""
    experiment_id: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed and not self.killed


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_bytes()[-n:].decode(errors="replace")
    except OSError:
        return ""


@contextmanager
def suite_session(suite: str, tracker: Tracker, console: Console) -> Iterator[tuple[Path, str]]:
    """What every invocation that runs workers for a suite (runs or tuning trials) holds while it does:
    the store set up, the suite's lock (SuiteBusy if a live orchestrator has it), SIGINT / SIGTERM
    raising Interrupted, and the runs a dead orchestrator left RUNNING marked KILLED.  Yields (state
    dir, experiment id)."""
    tracker.setup()
    state = state_dir(tracker.uri)
    with SuiteLock(state / "locks" / f"{suite}.lock", suite), stop_signals_interrupt():
        exp_id = tracker.experiment(suite)
        reaped = tracker.reap_running(exp_id)
        if reaped:
            console.print(f"[yellow]{len(reaped)} runs left RUNNING by a dead orchestrator[/] marked KILLED (outcome=orphaned)")
        yield state, exp_id


def suite_tags(suite: str) -> dict[str, str]:
    """Tags of every run an invocation creates: suite, git sha, package versions."""
    return {"suite": suite, "git_sha": git_sha(), **environment_tags()}


def record_death(tracker: Tracker, mlflow_id: str, rc: int, log_path: Path) -> tuple[str, str]:
    """After a worker exited with `rc`: a run it left non-terminal (it died without saying so) is
    marked FAILED with its exit code and log tail.  Returns the run's (status, outcome tag)."""
    status, outcome = tracker.state(mlflow_id)
    if rc != 0 and status not in TERMINAL:
        tracker.log_text(mlflow_id, _tail(log_path), "worker_log_tail.txt")
        tracker.set_tags(mlflow_id, {"outcome": "failed", "exit_code": str(rc)})
        tracker.terminate(mlflow_id, "FAILED")
        return "FAILED", "failed"
    return status, outcome


def run_suite(
    spec: SuiteSpec,
    runs: list[RunSpec],
    tracker: Tracker,
    workers: int | None = None,
    console: Console | None = None,
    log_dir: Path | None = None,
) -> SuiteOutcome:
    """Raises SuiteBusy if a live orchestrator runs the suite, Interrupted on SIGINT/SIGTERM."""
    console = console or Console(stderr=True)
    with suite_session(spec.name, tracker, console) as (state, exp_id):
        return _run_locked(spec, runs, tracker, exp_id, workers, console, log_dir or state / "logs" / spec.name, state / "checkpoints" / spec.name)


def _run_locked(
    spec: SuiteSpec, runs: list[RunSpec], tracker: Tracker, exp_id: str, workers: int | None, console: Console, log_dir: Path, ckpt_dir: Path
) -> SuiteOutcome:
    done = tracker.finished(exp_id)
    todo = [r for r in runs if r.run_id not in done]
    out = SuiteOutcome(total=len(runs), skipped=len(runs) - len(todo), experiment_id=exp_id)
    console.print(f"[bold]{spec.name}[/]: {len(runs)} runs, {out.skipped} already finished, {len(todo)} to run")
    if not todo:
        return out
    slots = make_slots(workers or spec.scheduler.workers, spec.scheduler.slots_per_gpu, visible_gpus())
    by_key = {r.run_id: r for r in todo}
    mlflow_ids: dict[str, str] = {}
    retries = spec.scheduler.max_retries
    pool = make_pool(spec.scheduler.backend, slots, spec.scheduler, workers)  # local subprocesses or Ray tasks
    retry: list[Job] = []  # failed jobs with retries left, run again after the current round

    base_tags = suite_tags(spec.name)
    command = " ".join(shlex.quote(a) for a in sys.argv)
    out.parent_id = tracker.start_parent(exp_id, f"{spec.name} {time.strftime('%Y-%m-%d %H:%M:%S')}", {**base_tags, "command": command, "n_runs": str(len(todo)), "orchestrator.pid": str(os.getpid())})
    try:
        with tempfile.TemporaryDirectory(prefix="harness-specs-") as tmp, Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console, transient=False,
        ) as progress:
            bar = progress.add_task(spec.name, total=len(todo), status="")
            jobs = []
            for r in todo:
                argv = worker_command(r, Path(tmp), tracker.uri, "--checkpoint-dir", str(ckpt_dir))
                jobs.append(Job(r.run_id, argv, log_dir / f"{r.run_id}.log"))

            def on_start(job: Job, slot) -> list[str]:
                r = by_key[job.key]
                tags = {**base_tags, "run_id": r.run_id, "ablation": r.ablation, "slot": str(slot.index), "attempt": str(job.attempt)}
                tags.update({f"label.{k}": str(v) for k, v in r.labels.items()})
                tags.update({f"tuned.{k}": str(v) for k, v in r.tuned.items()})
                mlflow_ids[job.key] = tracker.create_child(exp_id, out.parent_id, r.name, tags)
                return ["--mlflow-id", mlflow_ids[job.key], "--attempt", str(job.attempt)]

            def on_end(job: Job, rc: int) -> None:
                r, mid = by_key[job.key], mlflow_ids[job.key]
                status, outcome = record_death(tracker, mid, rc, job.log_path)
                if status in ("FAILED", "KILLED") and job.attempt < retries:  # KILLED: someone else SIGTERMed it
                    job.attempt += 1
                    retry.append(job)
                    return
                if status == "FINISHED":
                    (out.diverged if outcome == "diverged" else out.finished).append(r.name)
                else:
                    out.failed.append(r.name)
                    progress.console.print(f"[red]FAILED[/] {r.name} (run_id {r.run_id}, exit {rc}); log: {job.log_path}")
                progress.advance(bar)

            def on_tick(n_running: int) -> None:
                progress.update(bar, status=f"running {n_running}  failed {len(out.failed)}")

            pending = jobs
            try:
                while pending:
                    pool.run(pending, on_start, on_end, on_tick)
                    pending = list(retry)
                    retry.clear()
            finally:
                pool.close()
    except BaseException as exc:  # Ctrl-C, SIGTERM or a bug: no run of this invocation stays RUNNING
        out.killed = [by_key[job.key].name for job in pool.interrupted]
        for mid in mlflow_ids.values():
            if tracker.state(mid)[0] not in TERMINAL:
                tracker.set_tags(mid, {"outcome": "killed"})
                tracker.terminate(mid, "KILLED")
        tracker.terminate(out.parent_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    tracker.terminate(out.parent_id, "FINISHED" if out.ok else "FAILED")
    return out
