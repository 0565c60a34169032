"""A new sqlite store from a template: MLflow creates a store's schema by replaying every alembic migration
(~2-5 s on this machine, paid by every fresh store: every new suite folder, every test's store).  The
first store a given MLflow version creates is migrated once, emptied of its one path-dependent row (the
Default experiment, whose artifact location MLflow derives from where the store is opened; MLflow
re-creates it on first open when it is missing) and kept in the user's cache; later new stores are copies
of it (a file copy, milliseconds).  The copy is written next to the database and renamed into place, so a
reader never sees half a file.  HARNESS_STORE_TEMPLATE=off creates every store the MLflow way.

    $XDG_CACHE_HOME/harness/mlflow-<version>-store.db     (default ~/.cache/harness/)"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

DEFAULT_EXPERIMENT_ID = 0


def template_path() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "harness" / f"mlflow-{mlflow.__version__}-store.db"


def enabled() -> bool:
    return os.environ.get("HARNESS_STORE_TEMPLATE", "on").lower() not in ("off", "0", "false", "no")


def _make_template(path: Path) -> None:
    """Migrate an empty store the MLflow way in a scratch folder, drop the Default experiment, rename it to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".template-") as tmp:
        db = Path(tmp) / "mlflow.db"
        MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments(max_results=1)  # creates + migrates
        with sqlite3.connect(db) as con:
            con.execute("DELETE FROM experiment_tags WHERE experiment_id = ?", (DEFAULT_EXPERIMENT_ID,))
            con.execute("DELETE FROM experiments WHERE experiment_id = ?", (DEFAULT_EXPERIMENT_ID,))
        con.close()
        os.replace(db, path)


def create_from_template(db: Path) -> bool:
    """Put a migrated, empty store at `db` if there is no database there yet (the caller holds the store's
    schema lock).  False when templates are off or `db` exists already (MLflow opens it as it is)."""
    if not enabled() or db.exists():
        return False
    template = template_path()
    if not template.exists():
        _make_template(template)
    part = db.with_name(f".{db.name}.{os.getpid()}.part")
    shutil.copyfile(template, part)
    os.replace(part, db)
    return True
