"""The report's table of tuning studies: one row per cell, its trial counts, best value and params, the spread
of its trials' objective and whether they separate at all (a flat study's 'best' params are an arbitrary pick)."""

from __future__ import annotations

from collections.abc import Sequence

from harness.report.document import Section
from harness.tune.study import StudySummary, show_params


def tuning_section(summaries: Sequence[StudySummary]) -> Section:
    rows = []
    for s in summaries:
        best = "–" if s.best_value is None else f"{s.best_value:.4g}"
        rows.append([f"{s.stage}/{s.block}" if s.stage else s.block, s.cell, f"{s.complete} / {s.pruned} / {s.failed - s.interrupted}", best,
                     show_params(s.best_params) or "–", s.spread(), separation(s), s.study])
    note = ("Trials per cell: complete / pruned / failed (trials interrupted by a stopped orchestrator are redone and not "
            "counted). The final runs of each cell use its best params (MLflow tags `tuned.<path>`). Trial values: each "
            "complete trial's params and objective (a study of more than 6: the objective's range), each one training seed; separated: FLAT when every trial scored "
            "the same (the pick is arbitrary), else the gap from the best to the next trial: a gap smaller than the seed "
            "spread of the final runs (the tables' intervals) does not separate them either.")
    return Section("Tuning: best params per cell", ["block", "cell", "trials", "best value", "best params", "trial values",
                                                    "separated", "study"], rows, note)


def separation(s: StudySummary) -> str:
    if s.flat:
        return f"FLAT: all {len(s.values)} trials {s.values[0]:.4g}"
    return "–" if s.gap is None else f"gap {s.gap:.3g} to the next trial"


def summary_line(s: StudySummary) -> str:
    """One line per cell for the CLI."""
    name = f"{s.stage}/{s.block}" if s.stage else s.block
    best = "no complete trial" if s.best_value is None else f"best {s.best_value:.4g}: {show_params(s.best_params)}"
    return f"tuned {name}[{s.cell}]: {best}; trials {s.spread()}; {separation(s)}"
