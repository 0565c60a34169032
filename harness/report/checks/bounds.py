"""`at_least` / `at_most` / `between`: each point's mean against fixed bounds.  A point's p-values come
from the interval of its mean (harness.report.stats.interval: the seeds' t-interval, with the test items'
Wilson interval for a proportion), so a part decides exactly where that interval clears the bound."""

from __future__ import annotations

import math

import polars as pl

from harness.report import stats
from harness.report.checks.base import (
    Evaluation,
    Frame,
    Part,
    Sample,
    best,
    evaluator,
    interval_text,
    label,
    level_text,
    no_data,
    num,
    points,
    worst,
)
from harness.spec.claim_models import AtLeast, AtMost, Between


def _p_above(s: Sample, value: float, exact: bool) -> float:
    """One-sided p-value that the point's mean lies above `value`: 0 / 1 for an exact point (taken as it is),
    nan below MIN_DECIDE seeds."""
    if exact:
        return 0.0 if s.mean > value else 1.0
    if s.n < stats.MIN_DECIDE:
        return math.nan
    return stats.mean_p_above(s.values, value, s.items)


def _part(check: AtLeast | AtMost | Between, s: Sample, level: float, prefix: str) -> Part:
    e = s.estimate(level)
    exact = check.exact and not e.has_interval  # an exact check's point without an interval is taken as it is
    text = prefix + (num(e.center) if exact else interval_text(e)) + label(check, s.key, s.x)
    if isinstance(check, Between):
        lo, hi = _p_above(s, check.low, exact), _p_above(s, check.high, exact)
        p_pass, p_fail = worst((lo, 1 - hi)), best((1 - lo, hi))
        gap, frame = min(e.center - check.low, check.high - e.center), Frame()
        held = check.low <= e.center <= check.high
        text += f" vs [{check.low:g}, {check.high:g}]"
    else:
        above = isinstance(check, AtLeast)
        p = _p_above(s, check.value, exact)
        p_pass, p_fail = (p, 1 - p) if above else (1 - p, p)
        gap = (e.center - check.value) if above else (check.value - e.center)
        frame = Frame(bound=check.value, above=above)
        held = gap >= 0
    if exact:  # bounds are inclusive: a value on the bound holds
        p_pass, p_fail = (0.0, 1.0) if held else (1.0, 0.0)
    noise = stats.item_var(e.center, s.items)
    return Part(label(check, s.key, s.x), text, p_pass, p_fail, (s,), frame, gap,
                stats.detectable(e.sd, s.n, noise, level), stats.seeds_needed(e.sd, gap, noise, level), noise, s.n, exact)


def _method(check: AtLeast | AtMost | Between, samples: list[Sample], level: float, alpha: float) -> str:
    ests = [s.estimate(level) for s in samples]
    if check.exact and not any(e.has_interval for e in ests):
        return "exact: each point taken as it is (no interval)"
    used = [stats.METHODS[m] for m in dict.fromkeys(e.method for e in ests)]
    return f"{level_text(alpha)} interval of the mean: {' / '.join(used)}"


@evaluator(AtLeast)
@evaluator(AtMost)
@evaluator(Between)
def bounds(check: AtLeast | AtMost | Between, df: pl.DataFrame, alpha: float) -> Evaluation:
    pts, n_runs = points(df, check)
    if why := no_data(pts, n_runs, check):
        return Evaluation(no_data=why)
    level = 1 - alpha
    prefix = "" if len(pts) == 1 else "min " if isinstance(check, AtLeast) else "max " if isinstance(check, AtMost) else ""
    means = [s.mean for s in pts]
    passed = f"{num(min(means))}..{num(max(means))} over {len(pts)} points of {n_runs} runs" \
        if isinstance(check, Between) and len(pts) > 1 else ""
    return Evaluation([_part(check, s, level, prefix) for s in pts], _method(check, pts, level, alpha), passed=passed)
