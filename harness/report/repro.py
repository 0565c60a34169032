"""The reproducibility block: code version (runs' and now), package versions, devices, suite hash,
and the commands that rerun the suite and rebuild the report."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import shlex
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from harness.provenance import code_version
from harness.report.document import Section, Text
from harness.spec.models import SuiteSpec
from harness.tags import Tag
from harness.track import ParentRun, RunRecord

PACKAGES = ("torch", "mlflow", "numpy", "pandas", "polars", "scipy", "pydantic", "optuna", "seaborn", "matplotlib")


def suite_hash(spec: SuiteSpec) -> str:
    """sha256 of the validated suite (after include and overrides), as canonical JSON."""
    data = spec.model_dump(mode="json", by_alias=True)
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _counts(values: Iterable[str]) -> str:
    c = Counter(values)
    return ", ".join(f"{v} ({n} runs)" for v, n in sorted(c.items())) if c else "–"


def rerun_commands(spec: SuiteSpec, path: Path, overrides: list[str]) -> list[str]:
    named = path.parent.name == "suites" and path.stem == spec.name
    ov = " ".join(shlex.quote(o) for o in overrides)
    make = f"make suite SUITE={spec.name}" + (f" PROFILE={spec.profile}" if spec.profile else "") + (f" OVERRIDES={shlex.quote(ov)}" if ov else "") if named else None
    target = (spec.name if named else shlex.quote(str(path))) + (f" --profile {spec.profile}" if spec.profile else "")
    cmds = [make] if make else []
    cmds += [f".venv/bin/harness run {target}{' ' + ov if ov else ''}", f".venv/bin/harness report {target}{' ' + ov if ov else ''} --check"]
    return cmds


def reproducibility(spec: SuiteSpec, path: Path, overrides: list[str], records: list[RunRecord],
                    parent: ParentRun | None) -> list[Section | Text]:
    now = code_version()
    rows = [
        ["suite file", str(path)],
        ["suite hash (sha256 of the validated suite)", suite_hash(spec)],
        ["profile", spec.profile or "none (the suite as written)"],
        ["overrides", " ".join(overrides) or "none"],
        ["git sha of the runs (harness checkout)", _counts(r.tags.get(Tag.GIT_SHA, "unknown")
                                                          + (" (uncommitted changes)" if r.tags.get(Tag.GIT_DIRTY) == "true" else "")
                                                          for r in records)],
        ["git sha now (report)", now.described],
        ["requirements.lock sha256 of the runs", _counts(r.tags.get(Tag.LOCK_SHA, "not recorded") for r in records)],
        ["requirements.lock sha256 now", now.lock_sha256],
        ["devices", _counts(r.tags.get("device", "unknown") for r in records)],
    ]
    run_versions = sorted({k.removeprefix("versions.") for r in records for k in r.tags if k.startswith("versions.")})
    for name in run_versions:
        rows.append([f"{name} (runs)", _counts(r.tags.get(f"versions.{name}", "unknown") for r in records)])
    rows.append(["packages now (report)", ", ".join(f"{k} {v}" for k, v in package_versions().items())])
    if parent is not None:
        rows.append(["newest invocation", f"{parent.name}: {parent.tags.get('command', 'no command recorded')}"])
    table = Section("Reproducibility", ["item", "value"], rows)
    text = Text("Rerun", ["Run the suite (finished runs are skipped), then rebuild this report and check its claims:"],
                rerun_commands(spec, path, overrides))
    return [table, text]
