"""The jobs an invocation runs through a pool and their MLflow side.

`job_for` writes a RunSpec as JSON and gives the worker command that trains it; `TrackedJobs` creates
each attempt's child run just before it starts (with its tags), records a worker's death (a run left
non-terminal by a worker that died is FAILED with its exit code and log tail), and on an interrupt
marks every run it created and that is still open KILLED (outcome=killed)."""

from __future__ import annotations

import sys
from pathlib import Path

from harness.backends import Job
from harness.spec.models import RunSpec
from harness.store import read_tail
from harness.tags import TERMINAL, Outcome, Status, Tag
from harness.track import Tracker

WORKER = [sys.executable, "-m", "harness.worker"]


def job_for(run: RunSpec, key: str, spec_dir: Path, uri: str, log_path: Path, *options: str) -> Job:
    """The job that trains `run`: its RunSpec written to `spec_dir`, the worker command with `options`
    (the pool adds the per-attempt ones: --mlflow-id, --attempt)."""
    path = spec_dir / f"{run.run_id}.json"
    path.write_text(run.model_dump_json())
    return Job(key, [*WORKER, str(path), "--uri", uri, *options], log_path)


def _tail(path: Path, n: int = 4000) -> str:
    return read_tail(path, n).decode(errors="replace")


def record_death(tracker: Tracker, mlflow_id: str, rc: int, log_path: Path) -> tuple[str, str]:
    """After a worker exited with `rc`: a run it left non-terminal (it died without saying so) is
    marked FAILED with its exit code and log tail.  Returns the run's (status, outcome tag)."""
    status, outcome = tracker.state(mlflow_id)
    if rc != 0 and status not in TERMINAL:
        tracker.log_text(mlflow_id, _tail(log_path), "worker_log_tail.txt")
        tracker.set_tags(mlflow_id, {Tag.OUTCOME: Outcome.FAILED, Tag.EXIT_CODE: str(rc)})
        tracker.terminate(mlflow_id, Status.FAILED)
        return Status.FAILED, Outcome.FAILED
    return status, outcome


class TrackedJobs:
    """The child runs of one parent run, one per job attempt (module docstring)."""

    def __init__(self, tracker: Tracker, experiment_id: str, parent_id: str) -> None:
        self.tracker, self.experiment_id, self.parent_id = tracker, experiment_id, parent_id
        self.mlflow_ids: dict[str, str] = {}  # job key -> the child run of its current attempt

    def start(self, job: Job, name: str, tags: dict[str, str]) -> list[str]:
        """Create the attempt's child run; returns the worker options that name it."""
        self.mlflow_ids[job.key] = self.tracker.create_child(self.experiment_id, self.parent_id, name, tags)
        return ["--mlflow-id", self.mlflow_ids[job.key]]

    def end(self, job: Job, rc: int) -> tuple[str, str]:
        """(status, outcome) of the attempt that just ended."""
        return record_death(self.tracker, self.mlflow_ids[job.key], rc, job.log_path)

    def close_open(self) -> None:
        """Every child run still open (its worker was stopped) is marked KILLED, outcome=killed."""
        for mid in self.mlflow_ids.values():
            if self.tracker.state(mid)[0] not in TERMINAL:
                self.tracker.set_tags(mid, {Tag.OUTCOME: Outcome.KILLED})
                self.tracker.terminate(mid, Status.KILLED)
