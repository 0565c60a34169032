"""What an invocation that runs workers for a suite (runs or tuning trials) holds while it does: the
store set up, the suite's lock, SIGINT / SIGTERM raising `Interrupted`, and the runs a dead orchestrator
left RUNNING marked KILLED (outcome=orphaned).

The lock (harness.state.suite_lock: an flock, or a lease in the shared database of a server store) is held for the whole invocation, so runs found RUNNING on start
belong to a dead orchestrator.  The CLI exits 130 / 143 on Interrupted, once the workers are stopped
and their runs marked."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console

from harness.state import SuiteLock, suite_lock
from harness.store import StoreLayout
from harness.tags import Tag
from harness.track import Tracker, environment_tags, git_sha

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


def suite_tags(suite: str) -> dict[str, str]:
    """Tags of every run an invocation creates: suite, git sha, package versions."""
    return {Tag.SUITE: suite, Tag.GIT_SHA: git_sha(), **environment_tags()}


@contextmanager
def suite_session(suite: str, tracker: Tracker, console: Console) -> Iterator[Session]:
    """Raises SuiteBusy if a live orchestrator holds the suite's lock."""
    tracker.setup()
    store = StoreLayout.from_uri(tracker.uri)
    lock = suite_lock(store, suite)
    if store.is_server and isinstance(lock, SuiteLock):
        console.print("[yellow]warning[/]: the suite lock is local to this machine (set HARNESS_DATABASE_URL to share it "
                      "through the team database); another machine running this suite would orphan these runs")
    with lock, stop_signals_interrupt():
        exp_id = tracker.experiment(suite)
        reaped = tracker.reap_running(exp_id)
        if reaped:
            console.print(f"[yellow]{len(reaped)} runs left RUNNING by a dead orchestrator[/] marked KILLED (outcome=orphaned)")
        yield Session(suite, store, exp_id, suite_tags(suite))
