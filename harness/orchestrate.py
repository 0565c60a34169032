"""Run a suite: tracker set-up in the parent, skip finished runs, schedule the rest over slots,
record every outcome.  A failing run never takes the suite down."""

from __future__ import annotations

import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from harness.sched import Job, LocalPool, make_slots, visible_gpus
from harness.spec.models import RunSpec, SuiteSpec
from harness.track import TERMINAL, Tracker, environment_tags, git_sha


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


def run_suite(
    spec: SuiteSpec,
    runs: list[RunSpec],
    tracker: Tracker,
    workers: int | None = None,
    console: Console | None = None,
    log_dir: Path | None = None,
) -> SuiteOutcome:
    console = console or Console(stderr=True)
    tracker.setup()
    exp_id = tracker.experiment(spec.name)
    done = tracker.finished(exp_id)
    todo = [r for r in runs if r.run_id not in done]
    out = SuiteOutcome(total=len(runs), skipped=len(runs) - len(todo), experiment_id=exp_id)
    console.print(f"[bold]{spec.name}[/]: {len(runs)} runs, {out.skipped} already finished, {len(todo)} to run")
    if not todo:
        return out
    base_tags = {"suite": spec.name, "git_sha": git_sha(), **environment_tags()}
    command = " ".join(shlex.quote(a) for a in sys.argv)
    out.parent_id = tracker.start_parent(exp_id, f"{spec.name} {time.strftime('%Y-%m-%d %H:%M:%S')}", {**base_tags, "command": command, "n_runs": str(len(todo))})

    slots = make_slots(workers or spec.scheduler.workers, spec.scheduler.slots_per_gpu, visible_gpus())
    log_dir = log_dir or Path(".harness") / "logs" / spec.name
    by_key = {r.run_id: r for r in todo}
    mlflow_ids: dict[str, str] = {}
    retries = spec.scheduler.max_retries
    pool = LocalPool(slots)
    retry: list[Job] = []  # failed jobs with retries left, run again after the current round

    with tempfile.TemporaryDirectory(prefix="harness-specs-") as tmp, Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=console, transient=False,
    ) as progress:
        bar = progress.add_task(spec.name, total=len(todo), status="")
        jobs = []
        for r in todo:
            path = Path(tmp) / f"{r.run_id}.json"
            path.write_text(r.model_dump_json())
            argv = [sys.executable, "-m", "harness.worker", str(path), "--uri", tracker.uri]
            jobs.append(Job(r.run_id, argv, log_dir / f"{r.run_id}.log"))

        def on_start(job: Job, slot) -> list[str]:
            r = by_key[job.key]
            tags = {**base_tags, "run_id": r.run_id, "ablation": r.ablation, "slot": str(slot.index), "attempt": str(job.attempt)}
            tags.update({f"label.{k}": str(v) for k, v in r.labels.items()})
            mlflow_ids[job.key] = tracker.create_child(exp_id, out.parent_id, r.name, tags)
            return ["--mlflow-id", mlflow_ids[job.key]]

        def on_end(job: Job, rc: int) -> None:
            r, mid = by_key[job.key], mlflow_ids[job.key]
            status, outcome = tracker.state(mid)
            if rc != 0 and status not in TERMINAL:  # died without saying so
                tracker.log_text(mid, _tail(job.log_path), "worker_log_tail.txt")
                tracker.set_tags(mid, {"outcome": "failed", "exit_code": str(rc)})
                tracker.terminate(mid, "FAILED")
                status = "FAILED"
            if status == "FAILED" and job.attempt < retries:
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
        except KeyboardInterrupt:
            for job in pool.interrupted:
                tracker.terminate(mlflow_ids[job.key], "KILLED")
                out.killed.append(by_key[job.key].name)
            tracker.terminate(out.parent_id, "KILLED")
            raise
    tracker.terminate(out.parent_id, "FINISHED" if out.ok else "FAILED")
    return out
