"""Run a suite's runs inside a suite session: skip finished runs, schedule the rest over the pool's
slots, record every outcome.  A failing run never takes the suite down.

A run whose worker fails or dies is retried (a new child run, tag `attempt`) up to
`scheduler.max_retries` times, resuming from its last checkpoint when it has one.  On SIGINT / SIGTERM
(Interrupted, see harness.session) or any other exception, every run of the invocation still open and
its parent are marked KILLED (FAILED for a bug) before the exception goes on."""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from harness.backends import Job, Pool, Slot
from harness.jobs import TrackedJobs, job_for
from harness.session import Session
from harness.spec.models import RunSpec, SuiteSpec
from harness.tags import Kind, Outcome, Status, Tag
from harness.track import Tracker


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
    seconds: float = 0.0  # from the first launch to the last end (start-up and tracking set-up excluded)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.killed


def run_tags(run: RunSpec, slot: Slot, attempt: int) -> dict[str, str]:
    tags = {Tag.RUN_ID: run.run_id, Tag.ABLATION: run.ablation, Tag.SLOT: str(slot.index), Tag.ATTEMPT: str(attempt)}
    tags.update({f"{Tag.LABEL}{k}": str(v) for k, v in run.labels.items()})
    tags.update({f"{Tag.TUNED}{k}": str(v) for k, v in run.tuned.items()})
    return tags


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    console=console, transient=False)


def run_suite(spec: SuiteSpec, runs: list[RunSpec], tracker: Tracker, session: Session, pool: Pool,
              console: Console | None = None) -> SuiteOutcome:
    """Train the runs of `runs` not yet FINISHED in the store (raises Interrupted on SIGINT / SIGTERM)."""
    console = console or Console(stderr=True)
    done = tracker.finished(session.experiment_id)
    todo = [r for r in runs if r.run_id not in done]
    out = SuiteOutcome(total=len(runs), skipped=len(runs) - len(todo), experiment_id=session.experiment_id)
    console.print(f"[bold]{spec.name}[/]: {len(runs)} runs, {out.skipped} already finished, {len(todo)} to run")
    if not todo:
        return out
    by_key = {r.run_id: r for r in todo}
    command = " ".join(shlex.quote(a) for a in sys.argv)
    out.parent_id = tracker.start_parent(session.experiment_id, f"{spec.name} {time.strftime('%Y-%m-%d %H:%M:%S')}", {
        **session.tags, Tag.KIND: Kind.INVOCATION, Tag.COMMAND: command, Tag.N_RUNS: str(len(todo)),
        Tag.ORCHESTRATOR_PID: str(os.getpid())})
    tracked = TrackedJobs(tracker, session.experiment_id, out.parent_id)
    retry: list[Job] = []  # failed jobs with retries left, run again after the current round
    log_dir, ckpt_dir = session.store.log_dir(spec.name), session.store.checkpoint_dir(spec.name)
    try:
        with tempfile.TemporaryDirectory(prefix="harness-specs-") as tmp, _progress(console) as progress:
            bar = progress.add_task(spec.name, total=len(todo), status="")
            jobs = [job_for(r, r.run_id, Path(tmp), tracker.uri, log_dir / f"{r.run_id}.log", "--checkpoint-dir", str(ckpt_dir))
                    for r in todo]

            def on_start(job: Job, slot: Slot) -> list[str]:
                r = by_key[job.key]
                return [*tracked.start(job, r.name, {**session.tags, **run_tags(r, slot, job.attempt)}), "--attempt", str(job.attempt)]

            def on_end(job: Job, rc: int) -> None:
                r = by_key[job.key]
                status, outcome = tracked.end(job, rc)
                if status in (Status.FAILED, Status.KILLED) and job.attempt < spec.scheduler.max_retries:  # KILLED: someone else SIGTERMed it
                    job.attempt += 1
                    retry.append(job)
                    return
                if status == Status.FINISHED:
                    (out.diverged if outcome == Outcome.DIVERGED else out.finished).append(r.name)
                else:
                    out.failed.append(r.name)
                    progress.console.print(f"[red]FAILED[/] {r.name} (run_id {r.run_id}, exit {rc}); log: {job.log_path}")
                progress.advance(bar)

            def on_tick(n_running: int) -> None:
                progress.update(bar, status=f"running {n_running}  failed {len(out.failed)}")

            t0 = time.perf_counter()
            pending = jobs
            while pending:
                pool.run(pending, on_start, on_end, on_tick)
                pending = list(retry)
                retry.clear()
            out.seconds = time.perf_counter() - t0
    except BaseException as exc:  # Ctrl-C, SIGTERM or a bug: no run of this invocation stays RUNNING
        out.killed = [by_key[job.key].name for job in pool.interrupted]
        tracked.close_open()
        tracker.terminate(out.parent_id, Status.KILLED if isinstance(exc, KeyboardInterrupt) else Status.FAILED)
        raise
    tracker.terminate(out.parent_id, Status.FINISHED if out.ok else Status.FAILED)
    return out
