"""Declarative experiment harness: suite.yaml -> SuiteSpec -> [RunSpec] -> scheduler -> run_one -> tracker -> report."""

__version__ = "0.1.0"
