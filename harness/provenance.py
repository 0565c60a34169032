"""The code a run ran: the harness checkout's git commit (the checkout this package is imported from, not the
current directory's repository), whether its code had uncommitted changes and their diff, and the hash of
the lock file that pins the environment.  Read once per invocation (`code_version`).  Only the code counts
(CODE_PATHS): reports, suites (a run records its own config) and files a run writes do not make it dirty."""

from __future__ import annotations

import ast
import getpass
import hashlib
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]  # the repository holding harness/ (when installed editable / run from it)
LOCK_FILE = "requirements.lock"
MAX_DIFF = 2_000_000  # characters of the uncommitted diff kept as an artifact
UNKNOWN = "unknown"
CODE_PATHS = ("harness", "baselines", "hydra_plugins", "scale", "pyproject.toml", "requirements.lock", "requirements-scale.lock",
              "Makefile")


class DirtyTree(RuntimeError):
    """`--require-clean` and the harness checkout has uncommitted changes."""


RUN_CODE = ("harness/train", "harness/runner.py", "harness/components.py", "harness/registry.py", "harness/worker.py",
            "harness/estimate.py")  # the harness's side of what decides a run's result (the rest: planning, logging, reports)


def _py_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.py")) if root.is_dir() else [root] if root.suffix == ".py" and root.is_file() else []


def _code_of(source: bytes) -> bytes:
    """What a source file computes: its syntax tree without docstrings, so comments, blank lines, formatting and
    docstrings do not make a finished run stale.  A file that does not parse counts by its bytes."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return source
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False).encode()


def fingerprint_of(roots: list[Path], base: Path) -> str:
    """sha256 over every .py file under `roots`: its path (relative to `base` when under it) and its code (_code_of)."""
    h = hashlib.sha256()
    for root in roots:
        for f in _py_files(root):
            try:
                rel = f.relative_to(base)
            except ValueError:
                rel = f
            h.update(str(rel).encode() + b"\0" + _code_of(f.read_bytes()) + b"\0")
    return h.hexdigest()[:16]


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """What a finished run's result depends on, as a hash of source files (committed or not): the component
    packages (baselines and the plugins: every one the suite can name) and the harness's training side
    (RUN_CODE).  A run whose recorded fingerprint differs is stale (harness.report.status)."""
    import importlib

    from harness.plugins import plugin_names

    roots = [CHECKOUT / p for p in RUN_CODE]
    for name in plugin_names():
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        roots += [Path(p) for p in getattr(module, "__path__", [])] or [Path(module.__file__ or "")]
    return fingerprint_of(roots, CHECKOUT)


@dataclass(frozen=True)
class CodeVersion:
    commit: str  # UNKNOWN outside a git checkout
    dirty: bool
    diff: str  # `git diff HEAD` plus the untracked files' names ("" when clean)
    lock_sha256: str  # of requirements.lock (UNKNOWN when there is none)
    checkout: str

    @property
    def described(self) -> str:
        return self.commit + (" (uncommitted changes)" if self.dirty else "")


def _git(checkout: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "--no-optional-locks", *args], cwd=checkout, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def version_of(checkout: Path) -> CodeVersion:
    """The commit of `checkout`, and whether its code (CODE_PATHS) differs from it."""
    commit = (_git(checkout, "rev-parse", "HEAD") or "").strip() or UNKNOWN
    status = _git(checkout, "status", "--porcelain", "--", *CODE_PATHS) if commit != UNKNOWN else None
    dirty = bool(status and status.strip())
    diff = ""
    if dirty:
        untracked = [line[3:] for line in (status or "").splitlines() if line.startswith("??")]
        diff = (_git(checkout, "diff", "HEAD", "--", *CODE_PATHS) or "") + "".join(f"\n# untracked: {p}" for p in untracked)
        diff = diff[:MAX_DIFF]
    lock = checkout / LOCK_FILE
    lock_sha = hashlib.sha256(lock.read_bytes()).hexdigest() if lock.is_file() else UNKNOWN
    return CodeVersion(commit, dirty, diff, lock_sha, str(checkout))


@lru_cache(maxsize=1)
def code_version() -> CodeVersion:
    return version_of(CHECKOUT)


def require_clean() -> None:
    v = code_version()
    if v.dirty:
        raise DirtyTree(f"the harness checkout {v.checkout} has uncommitted changes (--require-clean): commit or stash them")


def user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return UNKNOWN
