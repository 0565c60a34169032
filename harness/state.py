"""The orchestrator's local state: where it lives and the per-suite lock that proves an orchestrator alive.

The state dir (harness.store.StoreLayout) is `.harness/` next to `mlflow.db` for a sqlite store (every
orchestrator writing that store shares it), else `./.harness/`.

While it runs a suite, an orchestrator holds an exclusive `flock` on the suite's lock file (its pid
written inside).  The kernel drops the lock when the process dies, however it dies, so an orchestrator
that gets the lock knows that every run of the suite still RUNNING in the store was left by a dead one.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from harness.store import StoreLayout


def state_dir(tracking_uri: str) -> Path:
    return StoreLayout.from_uri(tracking_uri).state_dir


class SuiteBusy(Exception):
    """Another live orchestrator holds the suite's lock."""


class SuiteLock:
    """`with SuiteLock(path, suite):` holds the suite's lock or raises SuiteBusy at once."""

    def __init__(self, path: Path, suite: str) -> None:
        self.path, self.suite = path, suite
        self._fd: int | None = None

    def __enter__(self) -> SuiteLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise SuiteBusy(f"suite {self.suite} is already being run by pid {holder} (lock {self.path})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # the file stays (unlinking a lock file races with the next taker)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
