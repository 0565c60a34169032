"""A suite's results read back from the tracking store (never from in-memory state): the public entry
point of notebooks and of `harness report`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.report.claims import ClaimResult, check_claims
from harness.report.document import Section, Text
from harness.report.frame import history_frame, results_frame
from harness.report.render import history_metrics, write_report
from harness.report.repro import reproducibility
from harness.spec.find import load_and_expand
from harness.spec.models import RunSpec, SuiteSpec
from harness.track import ParentRun, RunRecord, Tracker


@dataclass
class SuiteResults:
    spec: SuiteSpec
    path: Path  # the suite file
    frame: pd.DataFrame  # one row per run: config columns, `ablation`, `outcome`, final metrics
    history: pd.DataFrame | None  # metric histories the figures need (None when no figure uses one)
    records: list[RunRecord]
    n_expected: int
    parent: ParentRun | None  # the newest invocation's parent run
    overrides: list[str] = field(default_factory=list)

    def provenance(self) -> list[Section | Text]:
        return reproducibility(self.spec, self.path, self.overrides, self.records, self.parent)

    def claims(self) -> list[ClaimResult]:
        return check_claims(self.spec.claims, self.frame)

    def write(self, out_dir: Path, sections: Sequence[Section] = (), claims: Sequence[ClaimResult] | None = None) -> Path:
        """Write the report (claims: checked there unless the caller already has them)."""
        return write_report(self.spec, self.frame, out_dir, self.n_expected, claims, self.history, sections, self.provenance())


def collect(spec: SuiteSpec, path: Path, runs: list[RunSpec], tracker: Tracker, overrides: Sequence[str] = ()) -> SuiteResults:
    """The newest finished run of each of `runs` (the suite's expansion), from the store."""
    exp_id = tracker.experiment_id(spec.name)
    records = tracker.results(exp_id, [r.run_id for r in runs]) if exp_id else []
    keys = history_metrics(spec)
    by_id = {r.run_id: r for r in runs}
    history = history_frame(records, {r.mlflow_id: tracker.history(r.mlflow_id, keys) for r in records}, by_id) if keys else None
    parent = tracker.newest_parent(exp_id) if exp_id else None
    return SuiteResults(spec, path, results_frame(records, by_id), history, records, len(runs), parent, list(overrides))


def load_results(suite: str | Path, tracking_uri: str | None = None, overrides: Sequence[str] = ()) -> SuiteResults:
    """Load and validate a suite (a name in suites/ or a path), expand it and read its runs' results
    from the tracking store (default sqlite:///./mlflow.db)."""
    loaded, runs = load_and_expand(suite, overrides)
    return collect(loaded.spec, loaded.path, runs, Tracker(tracking_uri), overrides)
