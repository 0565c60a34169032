"""Where a tracking URI keeps a suite's state: the one place that parses a URI into paths.

    sqlite:///rel/mlflow.db   sqlite:////abs/mlflow.db   (any other URI: http(s)://, postgresql://, file:, databricks)
    root        the database's folder                    the current directory (resolved when the layout is made)
    state_dir   <root>/.harness: locks/<suite>.lock, logs/<suite>/<run_id>.log, checkpoints/<suite>/<run_id>/resume.pt
    artifacts   <root>/mlartifacts/<experiment>          None: the server (or the store) decides
    journal     <root>/optuna-journal.log                <state_dir>/optuna-journal.log

A tracking server (http(s)://) is shared by machines, so what must be shared lives with it, not in the
local state dir (which keeps only logs):
    shared_db    $HARNESS_DATABASE_URL (e.g. postgresql://harness@db:5432/harness_optuna; the password comes
                 from libpq's PGPASSFILE or PGPASSWORD, never from the URL): the suite leases
                 (harness.state.LeaseLock) and the default Optuna storage (RDB)
    checkpoints  resume checkpoints are artifacts of the attempt that saved them (`resume/resume.pt`, tag
                 `checkpoint_step`), so a retry on any node finds them through the server

Every orchestrator writing one sqlite store shares its state dir; paths are resolved once, here (a
relative database path is relative to the current directory, like sqlite's own)."""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SQLITE_PREFIX = "sqlite:///"


def read_tail(path: Path | str, n: int) -> bytes:
    """The last `n` bytes of a log, read in bounded memory (a run's log may be GBs); b"" when it cannot be read."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - n))
            return f.read(n)
    except OSError:
        return b""
SERVER_PREFIXES = ("http://", "https://")
JOURNAL_NAME = "optuna-journal.log"
UI_URL = "http://127.0.0.1:5000"  # where `harness ui` serves a local store


def ui_url(uri: str) -> str:
    """The MLflow UI of a tracking URI: a tracking server is its own UI; a local store is served by `harness ui`
    ($HARNESS_UI_URL when it runs elsewhere)."""
    if uri.startswith(("http://", "https://")):
        return uri.rstrip("/")
    return os.environ.get("HARNESS_UI_URL", UI_URL).rstrip("/")


def run_url(base: str, experiment_id: str, mlflow_id: str) -> str:
    return f"{base}/#/experiments/{experiment_id}/runs/{mlflow_id}"


DATABASE_ENV = "HARNESS_DATABASE_URL"  # the shared database of a server store (leases, Optuna)
TRACKING_ENV = "MLFLOW_TRACKING_URI"


def default_uri(cwd: Path | None = None) -> str:
    """The store used when no --tracking-uri is given: $MLFLOW_TRACKING_URI (as MLflow itself reads it,
    e.g. from `make team-up`'s team.env), else ./mlflow.db."""
    return os.environ.get(TRACKING_ENV) or f"sqlite:///{((cwd or Path.cwd()) / 'mlflow.db').resolve()}"


def redact(url: str) -> str:
    """A URL with any password replaced by *** (for messages; the harness never logs a password)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


@dataclass(frozen=True)
class StoreLayout:
    uri: str
    root: Path
    sqlite_db: Path | None = None  # the database file of a sqlite store, else None

    @classmethod
    def from_uri(cls, uri: str, cwd: Path | None = None) -> StoreLayout:
        here = (cwd or Path.cwd()).resolve()
        if uri.startswith(SQLITE_PREFIX) and uri.removeprefix(SQLITE_PREFIX) not in ("", ":memory:"):
            db = Path(uri.removeprefix(SQLITE_PREFIX))
            db = (db if db.is_absolute() else here / db).resolve()
            return cls(uri, db.parent, db)
        return cls(uri, here)

    @property
    def is_server(self) -> bool:
        """A tracking server (several machines may share it)."""
        return self.uri.startswith(SERVER_PREFIXES)

    @property
    def shared_db(self) -> str | None:
        """The database machines share with a server store ($HARNESS_DATABASE_URL), else None."""
        return os.environ.get(DATABASE_ENV) or None if self.is_server else None

    @property
    def checkpoints_in_store(self) -> bool:
        """Resume checkpoints travel as artifacts through the server (any node finds them), not as files."""
        return self.is_server

    @property
    def state_dir(self) -> Path:
        return self.root / ".harness"

    def lock_path(self, suite: str) -> Path:
        return self.state_dir / "locks" / f"{suite}.lock"

    def log_dir(self, suite: str) -> Path:
        return self.state_dir / "logs" / suite

    def checkpoint_dir(self, suite: str) -> Path:
        return self.state_dir / "checkpoints" / suite

    @property
    def artifacts_dir(self) -> Path | None:
        """The artifact folder of a sqlite store (mlartifacts/ next to the database), else None."""
        return self.root / "mlartifacts" if self.sqlite_db is not None else None

    def artifact_location(self, experiment: str) -> str | None:
        """The artifact location a new experiment gets (a file URI), or None to let the store decide."""
        return (self.artifacts_dir / experiment).as_uri() if self.artifacts_dir is not None else None

    @property
    def journal(self) -> Path:
        """The default Optuna journal file of the store."""
        return (self.root if self.sqlite_db is not None else self.state_dir) / JOURNAL_NAME

    @property
    def optuna_storage(self) -> str:
        """The default Optuna storage: the shared database of a server store, else the journal file."""
        return self.shared_db or str(self.journal)

    @contextmanager
    def schema_lock(self) -> Iterator[None]:
        """For a sqlite store, an flock on `<db>.lock` while a client opens it: opening creates or migrates
        the schema, and two processes opening a new store at once (two suites started together) would
        both create its tables.  Other stores: nothing to hold."""
        if self.sqlite_db is None:
            yield
            return
        self.sqlite_db.parent.mkdir(parents=True, exist_ok=True)
        with open(self.sqlite_db.with_name(self.sqlite_db.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            yield
