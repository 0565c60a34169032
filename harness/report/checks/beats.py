"""`beats`: side `a` better than side `b` by more than `margin` at every point, paired by seed (same seed =
same data stream).  The difference's interval adds both sides' test-item noise for proportions
(harness.report.stats.difference); `test` names the one-sided test that decides: the t-test is the interval
itself, a Wilcoxon signed-rank or a permutation test must agree with the interval (a rank test alone
ignores the test items' noise), and the method text warns when that test cannot reach alpha / 2 at all."""

from __future__ import annotations

import math

import polars as pl

from harness.report import stats
from harness.report.checks.base import (
    Evaluation,
    Frame,
    Part,
    Sample,
    evaluator,
    label,
    level_text,
    no_data,
    num,
    paired,
    points,
    worst,
)
from harness.spec.claim_models import Beats, Crossover

TESTS = {"t": "t-test", "wilcoxon": "Wilcoxon signed-rank test", "permutation": "permutation test"}


def matched(check: Beats | Crossover, df: pl.DataFrame, higher: bool) -> tuple[list[tuple[Sample, Sample]], str]:
    """The (a, b) samples at each point both sides have; or why there are none (NO DATA)."""
    pa, na = points(df, check, check.a, higher)
    pb, nb = points(df, check, check.b, higher)
    for side, pts, n in (("a", pa, na), ("b", pb, nb)):
        if why := no_data(pts, n, check):
            return [], f"side {side}: {why}"
    at_b = {(tuple(repr(v) for v in p.key.values()), repr(p.x)): p for p in pb}
    pairs = [(p, at_b[k]) for p in pa if (k := (tuple(repr(v) for v in p.key.values()), repr(p.x))) in at_b]
    return pairs, "" if pairs else "sides a and b share no point"


def compared(a: Sample, b: Sample, higher: bool, level: float) -> stats.Difference:
    """better - worse (a - b when higher is better), paired by seed where the seeds align."""
    x, y, is_paired = paired(a, b)
    if higher:
        return stats.difference(x, y, is_paired, a.items, b.items, level)
    return stats.difference(y, x, is_paired, b.items, a.items, level)


def p_values(d: stats.Difference, margin: float, test: str, exact: bool) -> tuple[float, float]:
    """(p_pass, p_fail): one-sided p-values that the difference lies above / below `margin`."""
    if exact and not d.has_interval:
        return (0.0, 1.0) if d.diff > margin else (1.0, 0.0)
    if d.n < stats.MIN_DECIDE or not d.has_interval:
        return math.nan, math.nan
    p_pass, p_fail = d.p_above(margin), d.p_below(margin)
    if test != "t":  # the rank / permutation test decides, and must agree with the interval
        p_pass, p_fail = worst((p_pass, d.p_above(margin, test))), worst((p_fail, d.p_below(margin, test)))
    return p_pass, p_fail


def _part(check: Beats, a: Sample, b: Sample, level: float) -> Part:
    d = compared(a, b, check.higher_is_better, level)
    p_pass, p_fail = p_values(d, check.margin, check.test, check.exact)
    gap = d.diff - check.margin
    ci = f" [{num(d.lo, '+')}, {num(d.hi, '+')}]" if d.has_interval else ""
    p = f", p = {p_pass:.2g}" if not math.isnan(p_pass) and not (check.exact and not d.has_interval) else ""
    text = (f"{num(a.mean)} vs {num(b.mean)}{label(check, a.key, a.x)}: {'a-b' if check.higher_is_better else 'b-a'} "
            f"{num(d.diff, '+')}{ci}{p} ({d.n} {'seeds' if d.paired else 'runs'})")
    need = d.seeds_needed(gap, level)
    if need is not None and check.test != "t":  # a rank or permutation test needs the seeds to reach alpha / 2 at all
        need = max(need, _reachable(check.test, 1 - level))
    return Part(label(check, a.key, a.x), text, p_pass, p_fail, (a, b), Frame(gap=2 * abs(check.margin), arms=True), gap,
                d.detectable(level), need, d.noise_var, d.n, check.exact and not d.has_interval, ("a", "b"))


def _reachable(test: str, alpha: float) -> int:
    """The fewest pairs at which `test` can reach a one-sided p below alpha / 2."""
    n = 2
    while stats.min_attainable_p(test, n) >= alpha / 2:
        n += 1
    return n


def test_text(test: str, margin: float, diffs: list[stats.Difference], alpha: float) -> str:
    """The one-sided test in words, with a warning when it cannot reach alpha / 2 at these seed counts."""
    text = f"one-sided {TESTS[test]} of difference > margin {margin:g}"
    if test == "t":
        return text
    floor = max((stats.min_attainable_p(test, d.n, None if d.paired else d.n) for d in diffs), default=0.0)
    warn = (f" (WARNING: with {min(d.n for d in diffs)} seeds its smallest attainable p is {floor:.3g}, above alpha/2 = "
            f"{alpha / 2:g}: it cannot decide)") if floor > alpha / 2 else ""
    return f"{text}, which the interval must agree with{warn}"


@evaluator(Beats)
def beats(check: Beats, df: pl.DataFrame, alpha: float) -> Evaluation:
    pairs, why = matched(check, df, check.higher_is_better)
    if why:
        return Evaluation(no_data=why)
    level = 1 - alpha
    parts = [_part(check, a, b, level) for a, b in pairs]
    if all(p.exact for p in parts):
        return Evaluation(parts, "exact: each side taken as it is (no interval)")
    diffs = [compared(a, b, check.higher_is_better, level) for a, b in pairs]
    kinds = {"paired by seed" if d.paired else "unpaired (Welch)" for d in diffs}
    items = " + the test items' noise (Agresti-Caffo)" if any(d.noise_var for d in diffs) else ""
    method = (f"{' / '.join(sorted(kinds))}: {level_text(alpha)} interval of the mean difference{items}; "
              f"{test_text(check.test, check.margin, diffs, alpha)}")
    return Evaluation(parts, method)
