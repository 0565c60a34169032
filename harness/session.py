"""What an invocation that runs workers for a suite (runs or tuning trials) holds while it does: the
store set up, the suite's lock, SIGINT / SIGTERM raising `Interrupted`, and the runs a dead orchestrator
left RUNNING marked KILLED (outcome=orphaned).

The lock (harness.state.suite_lock: an flock, or a lease in the shared database of a server store) is held for the whole invocation, so runs found RUNNING on start
belong to a dead orchestrator.  The CLI exits 130 / 143 on Interrupted, once the workers are stopped
and their runs marked."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console

from harness.provenance import CodeVersion, code_fingerprint, code_version, user
from harness.state import SuiteLock, suite_lock
from harness.store import StoreLayout
from harness.tags import CELLS_VIEW, Tag
from harness.track import Tracker, environment_tags

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


@dataclass(frozen=True)
class Session:
    suite: str
    store: StoreLayout
    experiment_id: str
    tags: dict[str, str]  # of every run the invocation creates (suite_tags)
    code: CodeVersion
    description: str = ""  # the suite's


# The runs page grouped by the `cell` tag (mean over each cell's seeds): what the MLflow UI opens at
# #/experiments/<id>/runs?viewStateShareKey=harness-cells (its shared-view format: an experiment tag holding the view's JSON).
CELLS_VIEW_STATE = {"groupBy": {"aggregateFunction": "average", "groupByKeys": [{"mode": "tag", "groupByData": Tag.CELL}]}}
MAX_COLUMNS = 16  # columns the view shows (the suite's axes first, then the metrics its report reads)


def view_columns(params: Sequence[str], metrics: Sequence[str]) -> list[str]:
    """The MLflow runs table's column keys (params.`name`, as its UI spells them) of `params`, then `metrics`."""
    keys = [f"params.`{p}`" for p in dict.fromkeys(params)] + [f"metrics.`{m}`" for m in dict.fromkeys(metrics)]
    return keys[:MAX_COLUMNS]


def experiment_tags(description: str, columns: Sequence[str] = ()) -> dict[str, str]:
    """The suite's experiment: its description and the shared view of its runs grouped by cell, showing `columns`
    (view_columns: the suite's axes and headline metrics; without them the UI hides every param and metric)."""
    state = {**CELLS_VIEW_STATE, **({"selectedColumns": list(columns)} if columns else {})}
    return {Tag.NOTE: description.strip(), f"{Tag.SHARED_VIEW}{CELLS_VIEW}": json.dumps(state)}


def suite_tags(suite: str, source: str = "") -> dict[str, str]:
    """Tags of every run an invocation creates: suite, the code (the harness checkout's commit, dirty or not,
    the lock file's hash), package versions, and MLflow's standard source / commit / user tags."""
    code = code_version()
    return {Tag.SUITE: suite, Tag.GIT_SHA: code.commit, Tag.GIT_DIRTY: str(code.dirty).lower(), Tag.LOCK_SHA: code.lock_sha256,
            Tag.CODE_FINGERPRINT: code_fingerprint(),
            Tag.SOURCE_NAME: source or suite, Tag.SOURCE_TYPE: "LOCAL", Tag.SOURCE_COMMIT: code.commit, Tag.USER: user(),
            **environment_tags()}


@contextmanager
def suite_session(suite: str, tracker: Tracker, console: Console, source: str = "", description: str = "",
                  columns: Sequence[str] = ()) -> Iterator[Session]:
    """Raises SuiteBusy if a live orchestrator holds the suite's lock.  `source`: the suite file (MLflow's
    source name); `description`: the suite's, shown on its experiment; `columns`: its runs view's (view_columns)."""
    tracker.setup()
    store = StoreLayout.from_uri(tracker.uri)
    lock = suite_lock(store, suite)
    if store.is_server and isinstance(lock, SuiteLock):
        console.print("[yellow]warning[/]: the suite lock is local to this machine (set HARNESS_DATABASE_URL to share it "
                      "through the team database); another machine running this suite would orphan these runs")
    with lock, stop_signals_interrupt():
        exp_id = tracker.experiment(suite)
        tracker.set_experiment_tags(exp_id, experiment_tags(description, columns))
        reaped = tracker.reap_running(exp_id)
        if reaped:
            console.print(f"[yellow]{len(reaped)} runs left RUNNING by a dead orchestrator[/] marked KILLED (outcome=orphaned)")
        yield Session(suite, store, exp_id, suite_tags(suite, source), code_version(), description.strip())
