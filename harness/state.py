"""The orchestrator's local state and the per-suite lock that proves an orchestrator alive.

The state dir (harness.store.StoreLayout) is `.harness/` next to `mlflow.db` for a sqlite store (every
orchestrator writing that store shares it), else `./.harness/`.

Two locks, one contract (`with lock:` holds it or raises SuiteBusy at once, naming the holder):
- `SuiteLock`, for a store on this machine: an exclusive `flock` on the suite's lock file (its pid written
  inside).  The kernel drops the lock when the process dies, however it dies.
- `LeaseLock`, for a server store shared by machines: a row of the table `harness_suite_leases` in the
  shared database ($HARNESS_DATABASE_URL), taken with one atomic INSERT .. ON CONFLICT DO UPDATE .. WHERE
  expired, renewed by a heartbeat thread every ttl/3 and deleted on exit.  A holder that dies stops renewing
  and its lease expires after `ttl_s` (the database's clock decides, so the machines' clocks do not
  matter); a holder that finds its lease taken over (it was frozen past the ttl) calls `on_lost`.
Either way an orchestrator that holds the lock knows that every run of the suite still RUNNING in the
store was left by a dead one."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from harness.store import StoreLayout, redact

LEASE_TTL_ENV = "HARNESS_LEASE_TTL_S"
LEASE_TTL_S = 60.0


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


def _stop_self() -> None:
    """The default `on_lost`: SIGTERM this process (the orchestrator stops its workers, marks runs KILLED)."""
    print("error: this orchestrator's suite lease was taken over (it missed its heartbeats past the ttl): stopping",
          file=sys.stderr)
    os.kill(os.getpid(), signal.SIGTERM)


class LeaseLock:
    """`with LeaseLock(db_url, suite):` holds the suite's lease in a shared database (module docstring)."""

    TABLE = "harness_suite_leases"

    def __init__(self, url: str, suite: str, ttl_s: float | None = None, on_lost: Callable[[], None] = _stop_self) -> None:
        from sqlalchemy import Column, Float, MetaData, String, Table, create_engine

        self.url, self.suite, self.on_lost = url, suite, on_lost
        self.ttl_s = float(ttl_s if ttl_s is not None else os.environ.get(LEASE_TTL_ENV, LEASE_TTL_S))
        self.token = uuid.uuid4().hex
        self.holder = f"pid {os.getpid()} on {socket.gethostname()}"
        self.engine = create_engine(url, pool_pre_ping=True)
        self.table = Table(self.TABLE, MetaData(), Column("suite", String(200), primary_key=True),
                           Column("token", String(32), nullable=False), Column("holder", String(300), nullable=False),
                           Column("expires_at", Float, nullable=False))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _now(self, conn) -> float:
        """Seconds since the epoch by the database's clock (sqlite: this machine's, it is local anyway)."""
        from sqlalchemy import text

        if self.engine.dialect.name == "postgresql":
            return float(conn.execute(text("SELECT extract(epoch FROM clock_timestamp())")).scalar_one())
        return time.time()

    def _insert(self):
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(self.table)

    def _create_table(self) -> None:
        from sqlalchemy.exc import IntegrityError, ProgrammingError

        try:
            self.table.create(self.engine, checkfirst=True)
        except (IntegrityError, ProgrammingError):  # another orchestrator created it meanwhile
            self.table.create(self.engine, checkfirst=True)

    def __enter__(self) -> LeaseLock:
        from sqlalchemy import select

        self._create_table()
        t = self.table
        with self.engine.begin() as conn:
            now = self._now(conn)
            mine = {"token": self.token, "holder": self.holder, "expires_at": now + self.ttl_s}
            take = self._insert().values(suite=self.suite, **mine)
            conn.execute(take.on_conflict_do_update(index_elements=[t.c.suite], set_=mine, where=t.c.expires_at < now))
            token, holder, expires = conn.execute(select(t.c.token, t.c.holder, t.c.expires_at).where(t.c.suite == self.suite)).one()
        if token != self.token:
            raise SuiteBusy(f"suite {self.suite} is already being run by {holder} (lease in {redact(self.url)}, "
                            f"{max(0.0, expires - now):.0f} s left unless its holder renews it)")
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)
        self._thread.start()
        return self

    def renew(self) -> bool:
        """Extend the lease by ttl_s; False if it is no longer ours."""
        from sqlalchemy import update

        t = self.table
        with self.engine.begin() as conn:
            until = self._now(conn) + self.ttl_s
            done = conn.execute(update(t).where(t.c.suite == self.suite, t.c.token == self.token).values(expires_at=until))
        return done.rowcount == 1

    def _beat(self) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        warned = False
        while not self._stop.wait(self.ttl_s / 3):
            try:
                if not self.renew():
                    self.on_lost()
                    return
                warned = False
            except SQLAlchemyError as e:  # the database is down or restarting: keep trying until it is back
                if not warned:
                    print(f"warning: renewing the suite lease failed, retrying: {type(e).__name__}", file=sys.stderr)
                    warned = True

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        from sqlalchemy import delete
        from sqlalchemy.exc import SQLAlchemyError

        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(self.table).where(self.table.c.suite == self.suite, self.table.c.token == self.token))
        except SQLAlchemyError as e:  # the lease then expires after ttl_s
            print(f"warning: releasing the suite lease failed ({type(e).__name__}); it expires in {self.ttl_s:.0f} s", file=sys.stderr)
        self.engine.dispose()


def suite_lock(store: StoreLayout, suite: str) -> SuiteLock | LeaseLock:
    """The lock of `suite` for this store: a lease in the shared database of a server store, else the flock."""
    return LeaseLock(store.shared_db, suite) if store.shared_db else SuiteLock(store.lock_path(suite), suite)
