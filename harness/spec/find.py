"""Suite names -> suite files.  A name is looked up in the suite folders, in this order: $HARNESS_SUITES
(a folder), `./suites` (the user's own: a suite of theirs named like one of the repository's wins), then the
repository's own `suites/` (next to the harness package; found whatever the current directory).  A path
(ending in .yaml / .yml, or an existing file) is taken as it is."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from harness.plugins import load_plugins
from harness.registry import did_you_mean
from harness.spec.errors import Loc, SpecError
from harness.spec.expand import expand
from harness.spec.load import LoadedSuite, load_suite
from harness.spec.models import RunSpec
from harness.spec.roots import REPO_SUITES

SUITES_ENV = "HARNESS_SUITES"


def suite_dirs() -> list[Path]:
    dirs = [Path(os.environ[SUITES_ENV])] if os.environ.get(SUITES_ENV) else []
    dirs += [Path.cwd() / "suites", REPO_SUITES]
    return list(dict.fromkeys(d.resolve() for d in dirs if d.is_dir()))


def suite_files() -> list[Path]:
    """Every suite file of the suite folders (a name found in two folders: the first one's)."""
    found: dict[str, Path] = {}
    for d in suite_dirs():
        for p in sorted(d.glob("*.yaml")):
            found.setdefault(p.stem, p)
    return sorted(found.values(), key=lambda p: p.stem)


def find_suite(name: str) -> Path:
    p = Path(name)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise SpecError(Loc(str(p), 0, ""), "suite file not found")
        return p
    for d in suite_dirs():
        if (d / f"{name}.yaml").is_file():
            return _shown(d / f"{name}.yaml")
    known = [q.stem for q in suite_files()]
    where = Path("suites") / f"{name}.yaml"
    raise SpecError(Loc(str(where), 0, ""), f"unknown suite '{name}'{did_you_mean(name, known)} (known: {', '.join(known)})")


def _shown(path: Path) -> Path:
    """Relative to the current directory when under it (as reports and errors show it), else absolute."""
    try:
        return path.relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def load_and_expand(suite: str | Path, overrides: Sequence[str] = (), profile: str | None = None) -> tuple[LoadedSuite, list[RunSpec]]:
    """Find, load (plugins first: component names are looked up in the registries), validate and expand;
    with `profile`, that profile of the suite applied (harness.spec.profiles)."""
    load_plugins()
    loaded = load_suite(find_suite(str(suite)), list(overrides), profile)
    return loaded, expand(loaded)
