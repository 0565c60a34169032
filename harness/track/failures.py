"""When the store itself fails: a file at a sqlite store's path that is not a store (checked before MLflow opens
it), and the one line an exception that means "the store or the disk under it failed" becomes (harness.cli
prints it and exits STORE_EXIT; a bug keeps its traceback)."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

from harness.store import redact


class StoreError(RuntimeError):
    """The store cannot be read or written: not a database, corrupt, or its disk full or read-only.  One line
    for the user (harness.cli exits STORE_EXIT with it); finished runs stay in the store."""


SQLITE_HEADER = b"SQLite format 3\x00"
_FS_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EIO}


def check_sqlite_store(db: Path) -> None:
    """Refuse a file at a sqlite store's path that is not one: MLflow would silently start a new store over a
    0-byte file (every run trained again) and fail deep inside SQLAlchemy on anything else."""
    try:
        if not db.exists():
            return
        with open(db, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except OSError as e:
        raise StoreError(f"store {db}: cannot be read ({e.strerror})") from None
    if not head:
        raise StoreError(f"store {db} is empty (0 bytes), not an MLflow store: restore it from a backup, or "
                         "remove it to start a new store (every run will train again)")
    if head != SQLITE_HEADER:
        raise StoreError(f"store {db} is not an SQLite database: restore it from a backup, or point --tracking-uri elsewhere")


def store_failure(e: BaseException, uri: str) -> str | None:
    """One line for an exception that means the store, or the disk under the store, the logs or the reports,
    failed; else None (a bug: the traceback is the right report).  Tested in tests/harness/test_hostile.py."""
    where = redact(uri)
    if isinstance(e, StoreError):
        return str(e)
    chain, seen = [], set()
    while e is not None and id(e) not in seen:  # sqlite's error sits under SQLAlchemy's and MLflow's
        seen.add(id(e))
        chain.append(e)
        e = e.__cause__ or e.__context__
    for x in chain:
        if isinstance(x, sqlite3.DatabaseError):
            what = str(x).splitlines()[0]
            hint = ("free space (or point --tracking-uri elsewhere) and rerun: finished runs are kept"
                    if "full" in what else "restore it from a backup (sqlite3's `.recover` salvages what it can)"
                    if "malformed" in what or "not a database" in what else "rerun once the store is reachable")
            return f"store {where}: {what}: {hint}"
        if isinstance(x, OSError) and x.errno in _FS_ERRNOS:
            fix = "free space" if x.errno in (errno.ENOSPC, errno.EDQUOT) else "fix the path or its permissions"
            return (f"{x.filename or 'a file of the store'}: {x.strerror}: {fix}, then rerun: finished runs are kept "
                    f"(store {where})")
    return None
