"""Results (from the tracking store) -> polars frames (frame) -> statistics over seeds (stats) -> tables /
figures / claims -> reports/<suite>/; `harness results` exports the frames, `harness status` (status)."""

from harness.report.claims import ClaimResult, check_claims, suite_claims
from harness.report.document import Section
from harness.report.frame import history_frame, results_frame
from harness.report.render import history_metrics, write_report
from harness.report.results import SuiteResults, collect
from harness.report.tables import metric_table

__all__ = [
    "ClaimResult", "Section", "SuiteResults", "check_claims", "collect", "history_frame", "history_metrics",
    "metric_table", "results_frame", "suite_claims", "write_report",
]
