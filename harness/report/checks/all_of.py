"""`all`: every check in `checks` holds; its parts are theirs (harness/report/claims.py combines them)."""

from __future__ import annotations

import polars as pl

from harness.report.checks.base import Evaluation, evaluate, evaluator
from harness.spec.claim_models import AllOf


@evaluator(AllOf)
def all_of(check: AllOf, df: pl.DataFrame, alpha: float) -> Evaluation:
    subs = [evaluate(c, df, alpha) for c in check.checks]
    empty = [s.no_data for s in subs if s.no_data]
    method = "; ".join(dict.fromkeys(s.method for s in subs if s.method))
    return Evaluation(method=method, no_data="; ".join(empty), subs=subs)
