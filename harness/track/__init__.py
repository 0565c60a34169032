"""Tracking: the only module that imports mlflow.

Layout in the store: one experiment per suite, a parent run per suite invocation, a child run
per RunSpec (tag `run_id` = content hash).  The parent process calls `Tracker.setup()` before
any worker starts (concurrent first use of a sqlite store races on schema creation).
"""

from __future__ import annotations

import importlib
import logging
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
from harness.track.retry import MLFLOW_HTTP_DEFAULTS, ORCHESTRATOR_FACTOR, RetryingClient, TrackingUnavailable  # noqa: E402,F401

for _key, _value in MLFLOW_HTTP_DEFAULTS.items():  # short HTTP retries per call; harness.track.retry does the rest
    os.environ.setdefault(_key, _value)

import mlflow  # noqa: E402
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunStatus, RunTag  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from harness.store import StoreLayout, default_uri  # noqa: E402,F401  (default_uri re-exported)
from harness.tags import Kind, Outcome, Status, Tag  # noqa: E402
from harness.track import sql  # noqa: E402
from harness.track.failures import StoreError, check_sqlite_store, store_failure  # noqa: E402,F401  (re-exported)

# MLflow logs every failed store write with its traceback before raising it; the raised error is what counts
# (harness.cli turns a failed store into one line: harness.track.failures), so its log adds 60 lines of noise.
logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
from harness.track.template import create_from_template  # noqa: E402

CHECKPOINT_ARTIFACT_DIR = "resume"  # a server store's resume checkpoints: artifacts of the attempt that saved them

STORE_MODULES = (  # imported by MLflow on a client's first use: ~1.5 s that a warm worker pays once, not per run
    "mlflow.store.tracking.sqlalchemy_store", "mlflow.store.tracking.sqlalchemy_workspace_store",
    "mlflow.store.tracking.rest_store", "mlflow.store.artifact.local_artifact_repo",
    "mlflow.store.artifact.http_artifact_repo", "sqlalchemy.dialects.sqlite", "alembic.command",
)


def preload() -> None:
    """Import what opening a tracking store imports (for warm workers, before they fork)."""
    for name in STORE_MODULES:
        importlib.import_module(name)


def is_trial(run: Any) -> bool:
    return run.data.tags.get(Tag.KIND) == Kind.TRIAL


def git_sha(cwd: Path | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment_tags() -> dict[str, str]:
    import numpy
    import pydantic
    import torch

    return {
        "versions.python": platform.python_version(),
        "versions.torch": torch.__version__,
        "versions.mlflow": mlflow.__version__,
        "versions.numpy": numpy.__version__,
        "versions.pydantic": pydantic.__version__,
    }


class TrackingError(RuntimeError):
    """The tracking store refused an operation (e.g. an artifact location that cannot be written)."""



@dataclass(frozen=True)
class ParentRun:
    """The parent run of one suite invocation."""

    mlflow_id: str
    name: str
    start_time: int
    tags: dict[str, str]


@dataclass(frozen=True)
class RunRecord:
    """One finished child run as read back from the store."""

    mlflow_id: str
    run_id: str
    status: str
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, float]


class Tracker:
    """`deadline_factor`: a server store's calls retry for this many times $HARNESS_TRACKING_DEADLINE_S
    (harness.track.retry; the orchestrator's default, 3; a worker's RunLog: 1)."""

    def __init__(self, uri: str | None = None, deadline_factor: float = ORCHESTRATOR_FACTOR) -> None:
        self.uri = uri or default_uri()
        self.layout = StoreLayout.from_uri(self.uri)
        with self.layout.schema_lock():
            if self.layout.sqlite_db is not None:
                check_sqlite_store(self.layout.sqlite_db)
                create_from_template(self.layout.sqlite_db)  # a new store: a copy of a migrated one (track/template.py)
            client = MlflowClient(tracking_uri=self.uri)
        # a server may be down for a while (restarted, its database restarting): calls retry until a deadline
        self.client = RetryingClient(client, self.uri, deadline_factor) if self.layout.is_server else client

    # ------------------------------------------------------------ parent-side
    def setup(self) -> None:
        """Create / migrate the store now, in this (the parent) process."""
        self.client.search_experiments(max_results=1)

    def experiment(self, name: str) -> str:
        """The id of the suite's experiment, created (with the store's artifact location) if new."""
        return self.experiment_id(name) or self.client.create_experiment(name, artifact_location=self.layout.artifact_location(name))

    def experiment_id(self, name: str) -> str | None:
        """The id of an existing experiment, or None."""
        exp = self.client.get_experiment_by_name(name)
        return exp.experiment_id if exp is not None else None

    def start_parent(self, exp_id: str, name: str, tags: dict[str, str]) -> str:
        return self.client.create_run(exp_id, tags=tags, run_name=name).info.run_id

    def create_child(self, exp_id: str, parent: str, name: str, tags: dict[str, str]) -> str:
        return self.client.create_run(exp_id, tags={Tag.PARENT: parent, **tags}, run_name=name).info.run_id

    def state(self, mlflow_id: str) -> tuple[str, str]:
        """(status, outcome tag) of a run, in one read."""
        run = self.client.get_run(mlflow_id)
        return run.info.status, run.data.tags.get(Tag.OUTCOME, "")

    def final_metrics(self, mlflow_id: str) -> dict[str, float]:
        """The last value of each metric of a run."""
        return dict(self.client.get_run(mlflow_id).data.metrics)

    def terminate(self, mlflow_id: str, status: str) -> None:
        self.client.set_terminated(mlflow_id, status=status)

    def log_text(self, mlflow_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(mlflow_id, text, artifact_file)

    def set_tags(self, mlflow_id: str, tags: dict[str, str]) -> None:
        for chunk in _chunks([RunTag(k, str(v)) for k, v in tags.items()], 100):
            self.client.log_batch(mlflow_id, tags=chunk)

    def _search(self, exp_id: str, filter_string: str) -> Iterable[Any]:
        token = None
        while True:
            page = self.client.search_runs([exp_id], filter_string=filter_string, max_results=1000, page_token=token)
            yield from page
            token = page.token
            if not token:
                return

    def reap_running(self, exp_id: str) -> list[str]:
        """Mark KILLED (outcome=orphaned) every run of the experiment still RUNNING: parents, children
        and trials.  Only an orchestrator holding the suite's lock calls this, so their owner is dead."""
        reaped = []
        for r in list(self._search(exp_id, f"attributes.status = '{Status.RUNNING}'")):
            self.set_tags(r.info.run_id, {Tag.OUTCOME: Outcome.ORPHANED})
            self.terminate(r.info.run_id, Status.KILLED)
            reaped.append(r.info.run_name or r.info.run_id)
        return reaped

    def finished(self, exp_id: str) -> dict[str, str]:
        """run_id (content hash) -> mlflow id of its newest FINISHED child run (trials left out)."""
        store = sql.sql_store(self.client)
        if store is not None:
            return {k: f.mlflow_id for k, f in sql.newest_finished(store, exp_id).items()}
        return {r.run_id: r.mlflow_id for r in self._results_via_search(exp_id, None)}

    def checkpoint(self, suite: str, run_id: str, folder: Path) -> Path:
        """The model.pt of the newest FINISHED run of `run_id` in the suite's experiment, downloaded into
        `folder` (from wherever the store keeps artifacts: a local folder or a server)."""
        exp_id = self.experiment_id(suite)
        mlflow_id = self.finished(exp_id).get(run_id) if exp_id else None
        if mlflow_id is None:
            raise TrackingError(f"no FINISHED run with run_id {run_id} in experiment '{suite}' of {self.uri}")
        folder.mkdir(parents=True, exist_ok=True)
        try:
            return Path(self.client.download_artifacts(mlflow_id, "model.pt", str(folder)))
        except (OSError, MlflowException) as e:
            raise TrackingError(f"run {mlflow_id} (run_id {run_id}) has no model.pt to start from: {e}") from e

    # ------------------------------------------------------------ resume checkpoints kept in the store
    def checkpoints(self, suite: str, run_id: str) -> list[tuple[str, int]]:
        """(mlflow id, step) of each attempt of `run_id` holding a resume checkpoint (tag checkpoint_step,
        artifact resume/resume.pt), the furthest (then newest) first."""
        exp_id = self.experiment_id(suite)
        if exp_id is None:
            return []
        found = [(int(r.data.tags[Tag.CHECKPOINT_STEP]), r.info.start_time, r.info.run_id)
                 for r in self._search(exp_id, f"tags.`{Tag.RUN_ID}` = '{run_id}'")
                 if r.data.tags.get(Tag.CHECKPOINT_STEP, "").isdigit()]
        return [(mlflow_id, step) for step, _, mlflow_id in sorted(found, reverse=True)]

    def download_checkpoint(self, mlflow_id: str, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        return Path(self.client.download_artifacts(mlflow_id, f"{CHECKPOINT_ARTIFACT_DIR}/resume.pt", str(folder)))

    def drop_checkpoint(self, mlflow_id: str) -> None:
        """The run is over: its checkpoint is no longer offered (tag removed) and its file deleted."""
        self.client.delete_tag(mlflow_id, Tag.CHECKPOINT_STEP)
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        repo = get_artifact_repository(self.client.get_run(mlflow_id).info.artifact_uri, tracking_uri=self.uri)
        try:
            repo.delete_artifacts(CHECKPOINT_ARTIFACT_DIR)
        except (OSError, MlflowException, NotImplementedError) as e:  # the tag is gone: nothing will resume from it
            print(f"[tracking] checkpoint of run {mlflow_id} not deleted from the artifact store: {e}", file=sys.stderr)

    def history(self, mlflow_id: str, keys: Iterable[str]) -> dict[str, list[tuple[int, float]]]:
        """(step, value) pairs of each metric along a run (for curves over training)."""
        return {k: [(m.step, m.value) for m in self.client.get_metric_history(mlflow_id, k)] for k in keys}

    def histories(self, mlflow_ids: list[str], keys: list[str]) -> dict[str, list[tuple[str, int, float]]]:
        """mlflow id -> (metric, step, value) of every logged point of `keys`: one SQL query per 500 runs on an
        SQL store (harness.track.sql), else get_metric_history per run and metric."""
        store = sql.sql_store(self.client)
        if store is not None:
            return sql.histories(store, mlflow_ids, keys)
        return {m: [(k, s, v) for k, pts in self.history(m, keys).items() for s, v in pts] for m in mlflow_ids}

    def latest(self, exp_id: str) -> dict[str, tuple[str, str, str]]:
        """run_id -> (mlflow id, status, git sha tag) of its newest child run of any status (trials left out)."""
        store = sql.sql_store(self.client)
        if store is not None:
            return {k: (v.mlflow_id, v.status, v.git_sha) for k, v in sql.newest_any(store, exp_id).items()}
        best: dict[str, Any] = {}
        for r in self._search(exp_id, ""):
            rid = r.data.tags.get(Tag.RUN_ID)
            if rid and not is_trial(r) and (rid not in best or r.info.start_time > best[rid].info.start_time):
                best[rid] = r
        return {k: (r.info.run_id, r.info.status, r.data.tags.get(Tag.GIT_SHA, "")) for k, r in best.items()}

    def experiments(self, count_up_to: int = 1000) -> list[tuple[str, str, dict[str, str], int]]:
        """(id, name, tags, number of runs counted up to `count_up_to`) of every experiment of the store."""
        return [(e.experiment_id, e.name, dict(e.tags), len(self.client.search_runs([e.experiment_id], max_results=count_up_to)))
                for e in self.client.search_experiments()]

    def set_experiment_tags(self, exp_id: str, tags: dict[str, str]) -> None:
        """Experiment tags, e.g. its description (Tag.NOTE) and shared views of its runs page (Tag.SHARED_VIEW)."""
        for k, v in tags.items():
            self.client.set_experiment_tag(exp_id, k, v)

    def log_dataset(self, mlflow_id: str, name: str, digest: str, source: str, profile: str, context: str = "training") -> None:
        """An MLflow dataset input of the run (the UI's Dataset column): a generated dataset, named by its task
        and identified by the digest of its config (`source`: that config as JSON)."""
        ds = Dataset(name=name, digest=digest, source_type="code", source=source, profile=profile)
        self.client.log_inputs(mlflow_id, [DatasetInput(ds, [InputTag("mlflow.data.context", context)])])

    def results(self, exp_id: str, run_ids: Iterable[str] | None = None) -> list[RunRecord]:
        """Newest FINISHED child run per run_id (trials left out), optionally restricted to `run_ids`.
        An SQL store is read with column queries (harness.track.sql), others through search_runs."""
        store = sql.sql_store(self.client)
        if store is None:
            return self._results_via_search(exp_id, run_ids)
        newest = sql.newest_finished(store, exp_id, run_ids)
        data = sql.details(store, [f.mlflow_id for f in newest.values()])
        return [RunRecord(f.mlflow_id, rid, Status.FINISHED, *data[f.mlflow_id]) for rid, f in newest.items()]

    def _results_via_search(self, exp_id: str, run_ids: Iterable[str] | None) -> list[RunRecord]:
        wanted = set(run_ids) if run_ids is not None else None
        best: dict[str, Any] = {}
        for r in self._search(exp_id, f"attributes.status = '{Status.FINISHED}'"):
            rid = r.data.tags.get(Tag.RUN_ID)
            if not rid or is_trial(r) or (wanted is not None and rid not in wanted):
                continue
            if rid not in best or r.info.start_time > best[rid].info.start_time:
                best[rid] = r
        return [
            RunRecord(r.info.run_id, rid, r.info.status, dict(r.data.params), dict(r.data.tags), dict(r.data.metrics))
            for rid, r in best.items()
        ]

    def newest_parent(self, exp_id: str) -> ParentRun | None:
        """The parent run of the suite's newest invocation (tagged harness.kind=invocation, or =report when
        a report needed a run to hold it).  Stores written before that tag: any run with no run_id tag,
        no parent, and not a trial or tuning parent."""
        found = [r for kind in (Kind.INVOCATION, Kind.REPORT)  # (tags take no IN in MLflow's filter grammar)
                 for r in self.client.search_runs([exp_id], f"tags.`{Tag.KIND}` = '{kind}'", max_results=1,
                                                  order_by=["attributes.start_time DESC"])]
        parents = found or [r for r in self._search(exp_id, "") if Tag.RUN_ID not in r.data.tags and Tag.PARENT not in r.data.tags
                                  and r.data.tags.get(Tag.KIND) not in (Kind.TRIAL, Kind.TUNE)]
        if not parents:
            return None
        r = max(parents, key=lambda r: r.info.start_time)
        return ParentRun(r.info.run_id, r.info.run_name or "", r.info.start_time, dict(r.data.tags))

    def log_report(self, suite: str, folder: Path, parent: ParentRun | None = None) -> str:
        """Log the files of `folder` under `report/` of `parent` (else the suite's newest parent run); when
        the suite's experiment has no parent run, one tagged `harness.kind=report` is created.  Returns the
        artifact URI.  Raises TrackingError when the experiment does not exist or the artifact store refuses."""
        exp_id = self.experiment_id(suite)
        if exp_id is None:
            raise TrackingError(f"no experiment '{suite}' in {self.uri}")
        parent = parent or self.newest_parent(exp_id)
        try:
            if parent is None:
                run_id = self.start_parent(exp_id, f"{suite} report", {Tag.SUITE: suite, Tag.KIND: Kind.REPORT})
                self.terminate(run_id, Status.FINISHED)
            else:
                run_id = parent.mlflow_id
            self.client.log_artifacts(run_id, str(folder), artifact_path="report")
            return f"{self.client.get_run(run_id).info.artifact_uri}/report"
        except (OSError, MlflowException) as e:
            raise TrackingError(f"logging the report to run {parent.mlflow_id if parent else '(new)'} failed: {e}") from e


def _chunks(items: list, n: int) -> Iterable[list]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


@contextmanager
def _sigterm_held() -> Iterator[None]:
    """Hold a SIGTERM back until the block ends, then hand it to the handler that was installed.  A worker's
    SIGTERM handler raises (harness.worker); raised in the middle of a write, it would leave the store's
    connection inside a transaction that holds the database's lock, and the KILLED record that follows
    (another connection of the same process) would wait on that lock until the warm process's SIGKILL
    (seen: the run left RUNNING, or a reader's "database is locked").  The handler is swapped rather than
    the signal masked: a signal sent to the process reaches whichever thread does not mask it, and the
    main thread then runs the Python handler all the same."""
    handler = signal.getsignal(signal.SIGTERM)
    if not callable(handler) or threading.current_thread() is not threading.main_thread():
        yield  # SIG_DFL / SIG_IGN: nothing is raised into the write (a kill releases the lock with the process)
        return
    caught: list[tuple[int, Any]] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: caught.append((signum, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, handler)
        if caught:
            handler(*caught[0])


MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value


def _param_value(v: str) -> str:
    if len(v) <= MAX_PARAM_CHARS:
        return v
    mark = f" ...[cut: {len(v):,} characters; config.json has the value]"
    return v[:MAX_PARAM_CHARS - len(mark)] + mark


class RunLog:
    """Worker-side handle on one child run.  Metrics are buffered and written with log_batch
    (one call per value costs ~60x more).  `seconds`: wall time spent in tracking calls so far."""

    def __init__(self, uri: str, mlflow_id: str, flush_every: int = 500) -> None:
        t0 = time.perf_counter()
        self.tracker = Tracker(uri, deadline_factor=1.0)
        self.id = mlflow_id
        self.flush_every = flush_every
        self._buf: list[Metric] = []
        self._logged: dict[str, int] = {}  # metric -> last step already in the store (a run resumed in place)
        self.seconds = time.perf_counter() - t0

    @contextmanager
    def _timed(self) -> Iterator[None]:
        """Time a tracking call; on a sqlite store, with SIGTERM held back until it returns (_sigterm_held).
        A server store holds no lock in this process, and its calls may retry for minutes through an outage
        (harness.track.retry): there a SIGTERM still ends the call at once."""
        t0 = time.perf_counter()
        try:
            with _sigterm_held() if self.tracker.layout.sqlite_db is not None else nullcontext():
                yield
        finally:
            self.seconds += time.perf_counter() - t0

    def log_params(self, params: dict[str, Any]) -> None:
        """The flat config as MLflow params (for the UI; the run's `config.json` artifact holds it whole): a
        value over MLflow's 6,000 characters is cut visibly, never silently."""
        items = [Param(k, _param_value(str(v))) for k, v in params.items()]
        with self._timed():
            for chunk in _chunks(items, 100):
                self.tracker.client.log_batch(self.id, params=chunk)

    def set_tags(self, tags: dict[str, str]) -> None:
        with self._timed():
            self.tracker.set_tags(self.id, tags)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        ts = int(time.time() * 1000)
        self._buf += [Metric(k, float(v), ts, step) for k, v in metrics.items() if step > self._logged.get(k, -1)]
        if len(self._buf) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        while self._buf:  # a chunk leaves the buffer once written: a flush cut short resumes where it stopped
            with self._timed():  # a SIGTERM waits for the chunk (and its removal from the buffer), not the flush
                chunk = self._buf[:1000]
                self.tracker.client.log_batch(self.id, metrics=chunk)
                del self._buf[: len(chunk)]

    def copy_history(self, source_id: str, upto_step: int) -> int:
        """Copy every metric point of run `source_id` up to `upto_step` into this run (a resumed attempt
        takes over the history of the attempt whose checkpoint it resumed).  Returns the point count."""
        client = self.tracker.client
        with self._timed():
            points = [
                m
                for key in client.get_run(source_id).data.metrics
                for m in client.get_metric_history(source_id, key)
                if m.step <= upto_step
            ]
        self._buf += points
        self.flush()
        return len(points)

    def reopen(self) -> None:
        """This run is started again in place (a requeued SLURM job): RUNNING again, and the points it
        already logged are not logged twice (a run resumed from its checkpoint is bit-identical)."""
        client = self.tracker.client
        with self._timed():
            client.update_run(self.id, status=Status.RUNNING.value)
            self._logged = {k: max(m.step for m in client.get_metric_history(self.id, k))
                            for k in client.get_run(self.id).data.metrics}

    def log_text(self, text: str, artifact_file: str) -> None:
        with self._timed():
            self.tracker.log_text(self.id, text, artifact_file)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        with self._timed():
            self.tracker.client.log_artifact(self.id, str(path), artifact_path)

    def finish(self, status: str) -> None:
        self.flush()
        with self._timed():
            self.tracker.terminate(self.id, RunStatus.to_string(RunStatus.from_string(status)))
