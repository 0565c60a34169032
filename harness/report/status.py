"""`harness status`: where each run of a suite stands in the store.

    finished  its newest FINISHED run ran the harness checkout's current commit
    stale     FINISHED, but by another commit than the checkout's now (its code may have changed)
    failed    never FINISHED; its newest run FAILED or was KILLED
    running   never FINISHED; its newest run is RUNNING (an orchestrator is at it, or died: the next reaps it)
    missing   no run in the store"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from harness.provenance import UNKNOWN, code_version
from harness.spec.models import RunSpec
from harness.tags import Status, Tag
from harness.track import Tracker

FINISHED, STALE, FAILED, RUNNING, MISSING = "finished", "stale", "failed", "running", "missing"
STATES = (FINISHED, STALE, FAILED, RUNNING, MISSING)


@dataclass(frozen=True)
class RunState:
    run: RunSpec
    state: str
    mlflow_id: str = ""
    commit: str = ""  # the commit its newest run recorded


def run_states(suite: str, runs: Sequence[RunSpec], tracker: Tracker, commit: str | None = None) -> list[RunState]:
    """Each run's state (module docstring); `commit`: the code now (default: the harness checkout's)."""
    now = commit if commit is not None else code_version().commit
    exp = tracker.experiment_id(suite)
    finished = {r.run_id: r for r in tracker.results(exp, [r.run_id for r in runs])} if exp else {}
    latest = tracker.latest(exp) if exp else {}
    out = []
    for r in runs:
        if r.run_id in finished:
            rec = finished[r.run_id]
            sha = rec.tags.get(Tag.GIT_SHA, UNKNOWN)
            out.append(RunState(r, STALE if now != UNKNOWN and sha != now else FINISHED, rec.mlflow_id, sha))
        elif r.run_id in latest:
            mid, status, sha = latest[r.run_id]
            out.append(RunState(r, RUNNING if status == Status.RUNNING else FAILED, mid, sha))
        else:
            out.append(RunState(r, MISSING))
    return out


def summary(states: Sequence[RunState]) -> str:
    c = Counter(s.state for s in states)
    return ", ".join(f"{c[k]} {k}" for k in STATES if c[k]) or "no runs"
