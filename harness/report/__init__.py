"""Results -> DataFrame -> tables / figures -> reports/<suite>/."""

from harness.report.frame import results_frame
from harness.report.render import write_report
from harness.report.tables import metric_table

__all__ = ["results_frame", "write_report", "metric_table"]
