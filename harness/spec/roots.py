"""Containment: every path a suite names resolves inside the allowed roots, symlinks resolved first.

The allowed roots are the directory of the suite file given on the command line, the working directory, and
the directories listed in $HARNESS_ALLOWED_ROOTS (os.pathsep-separated); an include may also read the suites
the harness ships (its checkout's suites/, read only: a journal is never written there).  A suite file cannot widen them: an
included file is held to the roots of the suite that was asked for.  A storage URL (a database or a network
connection) comes from the command line or the environment; a suite may name one only when the user sets
$HARNESS_ALLOW_SUITE_STORAGE=1.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOTS_ENV = "HARNESS_ALLOWED_ROOTS"
STORAGE_ENV = "HARNESS_ALLOW_SUITE_STORAGE"
REPO_SUITES = Path(__file__).resolve().parents[2] / "suites"  # the suites the harness ships


def allowed_roots(suite: Path) -> tuple[Path, ...]:
    extra = [Path(p).expanduser() for p in os.environ.get(ROOTS_ENV, "").split(os.pathsep) if p.strip()]
    return tuple(dict.fromkeys(p.resolve() for p in [suite.resolve().parent, Path.cwd(), *extra]))


def include_roots(suite: Path) -> tuple[Path, ...]:
    """Where an include may read: the allowed roots and the shipped suites (a user's suite builds on one)."""
    return tuple(dict.fromkeys([*allowed_roots(suite), REPO_SUITES.resolve()]))


def outside(path: Path, roots: tuple[Path, ...]) -> str | None:
    """None when `path` (resolved: symlinks followed, `..` folded) lies under one of `roots`; else why not."""
    real = path.resolve()
    if any(real == r or r in real.parents for r in roots):
        return None
    return f"resolves outside the allowed roots ({', '.join(map(str, roots))}; add one with ${ROOTS_ENV})"


def storage_refusal(storage: str, roots: tuple[Path, ...]) -> str | None:
    """None when a suite may name `storage` (a journal file inside the roots, or any storage the user allowed)."""
    if os.environ.get(STORAGE_ENV) == "1":
        return None
    if "://" in storage:
        return (f"a suite cannot choose a storage URL ({storage.split('://', 1)[0]}://...): pass it with "
                f"$HARNESS_DATABASE_URL, or allow suites to with ${STORAGE_ENV}=1")
    try:
        why = outside(Path(storage), roots)
    except (OSError, ValueError) as e:  # a NUL byte, an over-long name
        return f"bad journal file name {storage!r}: {getattr(e, 'strerror', None) or e}"
    return f"journal file {storage!r} {why}" if why else None
