"""The report's table of tuning studies: one row per cell, its trial counts, best value and params."""

from __future__ import annotations

from collections.abc import Sequence

from harness.report.document import Section
from harness.tune.study import StudySummary, show_params


def tuning_section(summaries: Sequence[StudySummary]) -> Section:
    rows = []
    for s in summaries:
        best = "–" if s.best_value is None else f"{s.best_value:.4g}"
        rows.append([s.block, s.cell, f"{s.complete} / {s.pruned} / {s.failed - s.interrupted}", best,
                     show_params(s.best_params) or "–", s.study])
    note = ("Trials per cell: complete / pruned / failed (trials interrupted by a stopped orchestrator are redone and not "
            "counted). The final runs of each cell use its best params (MLflow tags `tuned.<path>`).")
    return Section("Tuning: best params per cell", ["block", "cell", "trials", "best value", "best params", "study"], rows, note)
