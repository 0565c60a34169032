"""A suite's results read back from the tracking store (never from in-memory state): what `harness report`,
`harness results` and notebooks read (polars frames; `.to_pandas()` is one call away).  The one way to get
them is `harness.pipeline.results(suite)`: it knows which runs are the suite's (a tuned cell's runs carry
their study's best params, so their run_ids are not the ones the suite file alone expands to)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from harness.report.claims import ClaimResult, suite_claims
from harness.report.document import Section, Text
from harness.report.frame import history_frame, results_frame
from harness.report.render import ReportData, history_metrics, write_report
from harness.report.repro import reproducibility
from harness.report.seeds import candidate_runs
from harness.spec.models import RunSpec, SuiteSpec
from harness.store import run_url, ui_url
from harness.track import ParentRun, RunRecord, Tracker

FORMATS = ("parquet", "csv")


@dataclass
class SuiteResults:
    spec: SuiteSpec
    path: Path  # the suite file
    frame: pl.DataFrame  # one row per run with results: ids, cell, config columns (typed), outcome, final metrics
    history: pl.DataFrame | None  # run_id, metric, step, value (the metrics the figures need; None when none does)
    records: list[RunRecord]
    n_expected: int
    parent: ParentRun | None  # the newest invocation's parent run
    overrides: list[str] = field(default_factory=list)
    runs: list[RunSpec] = field(default_factory=list)  # the suite's runs (and extra seeds found in the store)
    experiment_id: str = ""
    ui: str = ""  # the MLflow UI's base URL

    def axes(self) -> list[str]:
        """What varies across the suite's runs: its axes (config paths), `ablation` and `stage` when they vary."""
        out = list(dict.fromkeys(k for r in self.runs for k in r.labels if k != "seed"))
        out += ["ablation"] if len({r.ablation for r in self.runs}) > 1 else []
        out += ["stage"] if len({r.stage for r in self.runs}) > 1 else []
        return out

    def provenance(self) -> list[Section | Text]:
        return reproducibility(self.spec, self.path, self.overrides, self.records, self.parent)

    def claims(self) -> list[ClaimResult]:
        return suite_claims(self.spec, self.frame)

    def data(self) -> ReportData:
        urls = {r.run_id: run_url(self.ui, self.experiment_id, r.mlflow_id) for r in self.records} if self.experiment_id else {}
        return ReportData(self.frame, self.history, self.n_expected, self.axes(), urls)

    def write(self, out_dir: Path, sections: Sequence[Section] = (), claims: Sequence[ClaimResult] | None = None,
              variant: str = "") -> Path:
        """Write the report (claims: checked there unless the caller already has them; `variant`: what the runs
        are when not the suite as written, for the header)."""
        return write_report(self.spec, self.data(), out_dir, claims, sections, self.provenance(), variant)

    def export(self, out: Path, fmt: str = "parquet", history: pl.DataFrame | None = None) -> list[Path]:
        """Write the runs table to `out` and the history table next to it (`<stem>.history.<ext>`)."""
        out.parent.mkdir(parents=True, exist_ok=True)
        hist_path = out.with_name(f"{out.stem}.history{out.suffix or '.' + fmt}")
        hist = history if history is not None else self.history if self.history is not None else history_frame({})
        frame = self.frame
        if fmt == "csv":  # csv has no list columns: a list axis value is written as its JSON text
            frame = frame.with_columns([pl.col(c).map_elements(lambda v: str(list(v)), return_dtype=pl.String)
                                        for c, t in frame.schema.items() if isinstance(t, pl.List)])
            frame.write_csv(out)
            hist.write_csv(hist_path)
        else:
            frame.write_parquet(out)
            hist.write_parquet(hist_path)
        return [out, hist_path]


def collect(spec: SuiteSpec, path: Path, runs: list[RunSpec], tracker: Tracker, overrides: Sequence[str] = (),
            history_keys: Sequence[str] | str | None = None) -> SuiteResults:
    """The newest finished run of each of `runs` (the suite's expansion, plus extra seeds a claim's
    `until_decided` added), from the store.  Histories: of `history_keys` (default: what the figures need;
    "all": every metric the runs logged)."""
    exp_id = tracker.experiment_id(spec.name)
    extra = candidate_runs(spec.claims, runs)
    records = tracker.results(exp_id, [r.run_id for r in [*runs, *extra]]) if exp_id else []
    found = {r.run_id for r in records}
    extra = [r for r in extra if r.run_id in found]
    all_runs = [*runs, *extra]
    if history_keys == "all":
        keys = sorted({k for r in records for k in r.metrics})
    else:
        keys = list(history_keys) if history_keys is not None else history_metrics(spec)
    history = None
    if keys:
        points = tracker.histories([r.mlflow_id for r in records], keys)
        history = history_frame({r.run_id: points.get(r.mlflow_id, []) for r in records})
    parent = tracker.newest_parent(exp_id) if exp_id else None
    return SuiteResults(spec, path, results_frame(all_runs, records), history, records, len(all_runs), parent,
                        list(overrides), all_runs, exp_id or "", ui_url(tracker.uri))
