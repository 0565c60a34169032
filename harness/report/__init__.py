"""Results -> DataFrame -> tables / figures -> reports/<suite>/."""

from harness.report.frame import history_frame, results_frame
from harness.report.render import history_metrics, write_report
from harness.report.tables import metric_table

__all__ = ["history_frame", "history_metrics", "results_frame", "write_report", "metric_table"]
