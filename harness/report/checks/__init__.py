"""Claim checks, one module per kind, each registered for its spec class (harness/spec/claim_models.py):
bounds (at_least, at_most, between), beats, curves (monotone, crossover), all_of; the reference arms a
check is read against (references).  `evaluate(check, frame, alpha)` -> Evaluation (base)."""

from harness.report.checks import all_of, beats, bounds, curves  # noqa: F401  (each registers its evaluator)
from harness.report.checks.base import EVALUATORS, Evaluation, Frame, Part, Sample, evaluate, points

__all__ = ["EVALUATORS", "Evaluation", "Frame", "Part", "Sample", "evaluate", "points"]
