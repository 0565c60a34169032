"""Where a tracking URI keeps a suite's state: the one place that parses a URI into paths.

    sqlite:///rel/mlflow.db   sqlite:////abs/mlflow.db   (any other URI: http(s)://, postgresql://, file:, databricks)
    root        the database's folder                    the current directory (resolved when the layout is made)
    state_dir   <root>/.harness: locks/<suite>.lock, logs/<suite>/<run_id>.log, checkpoints/<suite>/<run_id>/resume.pt
    artifacts   <root>/mlartifacts/<experiment>          None: the server (or the store) decides
    journal     <root>/optuna-journal.log                <state_dir>/optuna-journal.log

Every orchestrator writing one sqlite store shares its state dir; paths are resolved once, here (a
relative database path is relative to the current directory, like sqlite's own)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SQLITE_PREFIX = "sqlite:///"
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


def default_uri(cwd: Path | None = None) -> str:
    """The store used when no --tracking-uri is given: ./mlflow.db."""
    return f"sqlite:///{((cwd or Path.cwd()) / 'mlflow.db').resolve()}"


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
