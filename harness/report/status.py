"""`harness status`: where each run of a suite stands in the store.

    finished  its newest FINISHED run ran the code the checkout has now
    stale     FINISHED, but its code has changed since: the source its result depends on (the component packages
              and the harness's training side, committed or not: its `code_fingerprint` tag) differs from now;
              for a run recorded without a fingerprint, its commit differs from the checkout's
    failed    never FINISHED; its newest run FAILED or was KILLED
    running   never FINISHED; its newest run is RUNNING (an orchestrator is at it, or died: the next reaps it)
    missing   no run in the store"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from harness.provenance import UNKNOWN, code_fingerprint, code_version
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
    why: str = ""  # why a run is stale, in words


def run_states(suite: str, runs: Sequence[RunSpec], tracker: Tracker, commit: str | None = None,
               fingerprint: str | None = None) -> list[RunState]:
    """Each run's state (module docstring); `commit` / `fingerprint`: the code now (default: the checkout's)."""
    now = commit if commit is not None else code_version().commit
    code = fingerprint if fingerprint is not None else code_fingerprint()
    exp = tracker.experiment_id(suite)
    finished = {r.run_id: r for r in tracker.results(exp, [r.run_id for r in runs])} if exp else {}
    latest = tracker.latest(exp) if exp else {}
    out = []
    for r in runs:
        if r.run_id in finished:
            rec = finished[r.run_id]
            sha, ran = rec.tags.get(Tag.GIT_SHA, UNKNOWN), rec.tags.get(Tag.CODE_FINGERPRINT)
            if ran is not None:
                why = f"its code changed since it ran (fingerprint {ran} -> {code})" if ran != code else ""
            else:
                why = f"finished by commit {sha[:12]}, the checkout is at {now[:12]}" if now != UNKNOWN and sha != now else ""
            out.append(RunState(r, STALE if why else FINISHED, rec.mlflow_id, sha, why))
        elif r.run_id in latest:
            mid, status, sha = latest[r.run_id]
            out.append(RunState(r, RUNNING if status == Status.RUNNING else FAILED, mid, sha))
        else:
            out.append(RunState(r, MISSING))
    return out


def summary(states: Sequence[RunState]) -> str:
    c = Counter(s.state for s in states)
    return ", ".join(f"{c[k]} {k}" for k in STATES if c[k]) or "no runs"
