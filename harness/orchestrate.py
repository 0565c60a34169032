"""Run a suite's runs inside a suite session: skip finished runs, schedule the rest over the pool's
slots, record every outcome.  A failing run never takes the suite down.

A stage run starts as soon as its source run has FINISHED (now or in an earlier invocation), on any free
slot; when its source fails for good it is skipped (a KILLED child run, outcome=skipped, with the reason)
and so are the runs that start from it.  A stage may cap how many of its runs run at once.
A run whose worker fails or dies is retried (a new child run, tag `attempt`) up to its stage's
`max_retries` (else `scheduler.max_retries`) times, resuming from its last checkpoint when it has one.  On SIGINT / SIGTERM
(Interrupted, see harness.session) or any other exception, every run of the invocation still open and
its parent are marked KILLED (FAILED for a bug) before the exception goes on."""

from __future__ import annotations

import hashlib
import json
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
from harness.backends.base import JobQueue
from harness.jobs import TrackedJobs, job_for
from harness.session import Session
from harness.spec.models import RunSpec, SuiteSpec
from harness.store import read_tail
from harness.tags import BASE_ABLATION, DIFF_ARTIFACT, Kind, Outcome, Status, Tag
from harness.track import Tracker


@dataclass
class SuiteOutcome:
    total: int
    skipped: int
    finished: list[str] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # run names
    killed: list[str] = field(default_factory=list)
    skipped_after_failure: list[str] = field(default_factory=list)  # stage runs whose source failed
    parent_id: str = ""
    experiment_id: str = ""
    seconds: float = 0.0  # from the first launch to the last end (start-up and tracking set-up excluded)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.killed and not self.skipped_after_failure

    def after(self, earlier: list[SuiteOutcome]) -> SuiteOutcome:
        """This outcome with the runs trained by earlier calls of the same invocation counted in (a suite
        whose later stage is tuned runs the stages before it first): they show as run, not as skipped."""
        for e in earlier:
            self.skipped -= len(e.finished) + len(e.diverged)
            for name in ("finished", "diverged", "failed", "killed", "skipped_after_failure"):
                getattr(self, name)[:0] = getattr(e, name)
            self.seconds += e.seconds
        return self


def run_tags(run: RunSpec, slot: Slot | None, attempt: int) -> dict[str, str]:
    tags = {Tag.RUN_ID: run.run_id, Tag.ABLATION: run.ablation or BASE_ABLATION, Tag.CELL: run.cell, Tag.ATTEMPT: str(attempt)}
    tags |= {Tag.SLOT: str(slot.index)} if slot is not None else {}
    tags |= {Tag.STAGE: run.stage} if run.stage else {}
    tags |= {Tag.SOURCE_RUN_ID: run.config.source.run_id} if run.config.source else {}
    tags.update({f"{Tag.LABEL}{k}": str(v) for k, v in run.labels.items()})
    tags.update({f"{Tag.TUNED}{k}": str(v) for k, v in run.tuned.items()})
    return tags


def describe_run(run: RunSpec, suite_description: str = "") -> str:
    """The run's description in the MLflow UI (Markdown): what it is, then the suite's description."""
    c = run.config
    what = (f"Suite `{run.suite}`, cell `{run.cell}`, seed {c.seed}" + (f", ablation `{run.ablation}`" if run.ablation else "")
            + f": task `{c.task.name}`, model `{c.model.name}`, method `{c.method.name}`, {c.training.steps} steps"
            + (f", tuned {', '.join(f'{k}={v}' for k, v in run.tuned.items())}" if run.tuned else "") + f" (run_id `{run.run_id}`).")
    return what + (f"\n\n{suite_description.strip()}" if suite_description.strip() else "")


def source_note(run: RunSpec, source_mlflow_id: str | None, experiment_id: str, suite_description: str = "") -> dict[str, str]:
    """The run's description; a stage run's also links its source run (tag and description: the MLflow UI renders it as a link)."""
    if run.config.source is None or source_mlflow_id is None:
        return {Tag.NOTE: describe_run(run, suite_description)}
    link = f"[{run.source_name}](#/experiments/{experiment_id}/runs/{source_mlflow_id})"
    return {Tag.SOURCE_MLFLOW_ID: source_mlflow_id,
            Tag.NOTE: f"Stage `{run.stage}`: starts from the `{run.config.source.stage}` run {link} (run_id {run.config.source.run_id}).\n\n"
                      + describe_run(run, suite_description)}


def dataset_input(run: RunSpec) -> dict[str, str]:
    """The run's training data as an MLflow dataset: named by its task, identified by the hash of the task's config."""
    cfg = run.config.task.model_dump(mode="json")
    text = json.dumps(cfg, sort_keys=True)
    return {"name": run.config.task.name, "digest": hashlib.sha256(text.encode()).hexdigest()[:16], "source": text,
            "profile": json.dumps({"generated": True, "seed": run.config.seed})}


def retries_for(spec: SuiteSpec, run: RunSpec) -> int:
    stage = spec.stages.get(run.stage)
    return spec.scheduler.max_retries if stage is None or stage.scheduler.max_retries is None else stage.scheduler.max_retries


TAIL_BYTES = 65536  # of a failed run's log read for its error line (a log may be gigabytes)


def last_error(log_path: Path | None, tail: int = TAIL_BYTES) -> str:
    """The error line of a failed run's log: the exception line closing its last traceback (the first line after
    "Traceback (most recent call last):" that is not indented), else the log's last non-empty line; "" without
    a log.  Reads the last `tail` bytes only."""
    text = read_tail(log_path, tail).decode("utf-8", "replace") if log_path is not None else ""
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    starts = [i for i, ln in enumerate(lines) if ln.startswith("Traceback (most recent call last)")]
    after = lines[starts[-1] + 1:] if starts else []
    line = next((ln for ln in after if not ln[:1].isspace()), lines[-1] if lines else "")
    return line[:300]


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    console=console, transient=False)


def run_suite(spec: SuiteSpec, runs: list[RunSpec], tracker: Tracker, session: Session, pool: Pool,
              console: Console | None = None, rerun: frozenset[str] = frozenset()) -> SuiteOutcome:
    """Train the runs of `runs` not yet FINISHED in the store, and those of `rerun` (run_ids: e.g. stale runs)
    again (raises Interrupted on SIGINT / SIGTERM)."""
    console = console or Console(stderr=True)
    done = {k: v for k, v in tracker.finished(session.experiment_id).items() if k not in rerun}
    todo = [r for r in runs if r.run_id not in done]
    out = SuiteOutcome(total=len(runs), skipped=len(runs) - len(todo), experiment_id=session.experiment_id)
    console.print(f"[bold]{spec.name}[/]: {len(runs)} runs, {out.skipped} already finished, {len(todo)} to run")
    if not todo:
        return out
    by_key = {r.run_id: r for r in todo}
    sources = dict(done)  # run_id -> mlflow id of its FINISHED run: what a stage run's source link names
    command = " ".join(shlex.quote(a) for a in sys.argv)
    out.parent_id = tracker.start_parent(session.experiment_id, f"{spec.name} {time.strftime('%Y-%m-%d %H:%M:%S')}", {
        **session.tags, Tag.KIND: Kind.INVOCATION, Tag.COMMAND: command, Tag.N_RUNS: str(len(todo)),
        Tag.ORCHESTRATOR_PID: str(os.getpid()), Tag.NOTE: f"`{command}`: {len(todo)} runs of suite `{spec.name}`.\n\n{session.description}"})
    if session.code.dirty:
        tracker.log_text(out.parent_id, session.code.diff, DIFF_ARTIFACT)
    tracked = TrackedJobs(tracker, session.experiment_id, out.parent_id)
    log_dir, ckpt_dir = session.store.log_dir(spec.name), session.store.checkpoint_dir(spec.name)
    try:
        with tempfile.TemporaryDirectory(prefix="harness-specs-") as tmp, _progress(console) as progress:
            bar = progress.add_task(spec.name, total=len(todo), status="")
            queue = JobQueue(caps={name: st.scheduler.workers for name, st in spec.stages.items() if st.scheduler.workers})
            for r in todo:
                job = job_for(r, r.run_id, Path(tmp), tracker.uri, log_dir / f"{r.run_id}.log", "--checkpoint-dir", str(ckpt_dir))
                job.after, job.group = ((r.config.source.run_id,) if r.config.source else ()), r.stage
                queue.push(job)

            running = [0]

            def show() -> None:
                progress.update(bar, status=f"running {running[0]}  failed {len(out.failed)}")

            def on_start(job: Job, slot: Slot) -> list[str]:
                r = by_key[job.key]
                running[0] += 1
                show()
                if job.attempt:
                    progress.console.print(f"[yellow]retrying[/] {r.name} (attempt {job.attempt + 1})")
                if (ckpt_dir / r.run_id / "resume.pt").exists():
                    progress.console.print(f"resuming {r.name} from its last checkpoint ({ckpt_dir / r.run_id})")
                source_id = sources.get(r.config.source.run_id) if r.config.source else None
                tags = {**session.tags, **run_tags(r, slot, job.attempt), **source_note(r, source_id, session.experiment_id, session.description)}
                argv = tracked.start(job, r.name, tags)
                mid = tracked.mlflow_ids[job.key]
                tracker.log_dataset(mid, **dataset_input(r))
                if session.code.dirty:
                    tracker.log_text(mid, session.code.diff, DIFF_ARTIFACT)
                return [*argv, "--attempt", str(job.attempt)]

            def skip(job: Job, because: RunSpec) -> None:
                r = by_key[job.key]
                mid = tracker.create_child(session.experiment_id, out.parent_id, r.name, {
                    **session.tags, **run_tags(r, None, job.attempt), Tag.OUTCOME: Outcome.SKIPPED,
                    Tag.SKIPPED_BECAUSE: f"its source run {because.name} (run_id {because.run_id}) did not finish"})
                tracker.terminate(mid, Status.KILLED)
                out.skipped_after_failure.append(r.name)
                progress.console.print(f"[yellow]skipped[/] {r.name}: its source {because.name} did not finish")
                progress.advance(bar)

            def on_end(job: Job, rc: int) -> None:
                r = by_key[job.key]
                running[0] -= 1
                status, outcome = tracked.end(job, rc)
                if status in (Status.FAILED, Status.KILLED) and job.attempt < retries_for(spec, r):  # KILLED: someone else SIGTERMed it
                    job.attempt += 1
                    queue.push(job)
                    return
                if status == Status.FINISHED:
                    (out.diverged if outcome == Outcome.DIVERGED else out.finished).append(r.name)
                    sources[job.key] = tracked.mlflow_ids[job.key]
                    queue.succeed(job.key)
                else:
                    out.failed.append(r.name)
                    error = last_error(job.log_path)
                    progress.console.print(f"[red]FAILED[/] {r.name} (run_id {r.run_id}, exit {rc})"
                                           + (f": {error}" if error else "") + f"; log: {job.log_path}", highlight=False, soft_wrap=True)
                    for dropped in queue.fail(job.key):
                        skip(dropped, by_key[dropped.after[0]])
                progress.advance(bar)
                show()

            def on_tick(n_running: int) -> None:
                running[0] = n_running
                show()

            t0 = time.perf_counter()
            pool.run(queue, on_start, on_end, on_tick)
            out.seconds = time.perf_counter() - t0
    except BaseException as exc:  # Ctrl-C, SIGTERM or a bug: no run of this invocation stays RUNNING
        out.killed = [by_key[job.key].name for job in pool.interrupted]
        tracked.close_open()
        tracker.terminate(out.parent_id, Status.KILLED if isinstance(exc, KeyboardInterrupt) else Status.FAILED)
        raise
    tracker.terminate(out.parent_id, Status.FINISHED if out.ok else Status.FAILED)
    return out
