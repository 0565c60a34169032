"""The checks along an axis, each tested (a flat line is never a PASS):
- `monotone`: every step (next point - this one, in the direction) above -`tolerance`, and the rise from
  the first point to the last above `min_rise`;
- `crossover`: a - b significantly on one side at one point and on the other side at a later one (at `at`:
  the point before it and it), Bonferroni over the pairs of points and the two orders; FAIL: every point
  significantly on one side.
Every difference is harness.report.stats.difference (paired by seed, with the test items' noise); an
`exact` check takes each point as it is."""

from __future__ import annotations

import math
from itertools import combinations

import polars as pl

from harness.report import stats
from harness.report.checks.base import (
    Evaluation,
    Frame,
    Part,
    Sample,
    axis_name,
    best,
    difference,
    evaluator,
    groups,
    label,
    level_text,
    no_data,
    num,
    numeric,
    points,
    worst,
)
from harness.report.checks.beats import matched
from harness.report.frame import show
from harness.spec.claim_models import Crossover, Monotone


def _above(d: stats.Difference, value: float, exact: bool) -> tuple[float, float]:
    """(p that d > value, p that d < value); 0 / 1 from the means when exact."""
    if exact:
        return (0.0, 1.0) if d.diff > value else (1.0, 0.0)
    if d.n < stats.MIN_DECIDE or not d.has_interval:
        return math.nan, math.nan
    return d.p_above(value), d.p_below(value)


def _oriented(later: Sample, earlier: Sample, sign: float, level: float) -> stats.Difference:
    return difference(later, earlier, level) if sign > 0 else difference(earlier, later, level)


def _monotone_parts(check: Monotone, g: list[Sample], level: float) -> list[Part]:
    sign = 1.0 if check.direction == "increasing" else -1.0
    parts = []
    for p0, p1 in zip(g, g[1:]):
        d = _oriented(p1, p0, sign, level)
        p_pass, p_fail = _above(d, -check.tolerance, check.exact)
        where = f" at {axis_name(check, p0.x)} → {show(p1.x)}{label(check, p1.key, p1.x, with_x=False)}"
        parts.append(Part(where, f"step {num(p0.mean)} → {num(p1.mean)}{where}", p_pass, p_fail, (p0, p1), Frame(),
                          sign * (p1.mean - p0.mean) + check.tolerance, d.detectable(level),
                          d.seeds_needed(sign * (p1.mean - p0.mean) + check.tolerance, level), d.noise_var, d.n, check.exact))
    first, last = g[0], g[-1]
    d = _oriented(last, first, sign, level)
    p_pass, p_fail = _above(d, check.min_rise, check.exact)
    where = f" over {axis_name(check, first.x)}..{show(last.x)}{label(check, first.key, first.x, with_x=False)}"
    ci = f" [{num(d.lo, '+')}, {num(d.hi, '+')}]" if d.has_interval and not check.exact else ""
    rise = f"{'rise' if sign > 0 else 'fall'} {num(d.diff, '+')}{ci}" + (f" vs {check.min_rise:g}" if check.min_rise else "")
    gap = d.diff - check.min_rise
    parts.append(Part(where, f"{num(first.mean)} → {num(last.mean)}{where}: {rise}", p_pass, p_fail, tuple(g),
                      Frame(gap=2 * check.min_rise, arms=True), gap, d.detectable(level), d.seeds_needed(gap, level),
                      d.noise_var, d.n, check.exact))
    return parts


@evaluator(Monotone)
def monotone(check: Monotone, df: pl.DataFrame, alpha: float) -> Evaluation:
    pts, n_runs = points(df, check)
    if why := no_data(pts, n_runs, check):
        return Evaluation(no_data=why)
    parts: list[Part] = []
    for g in groups(pts, lambda p: tuple(repr(p.key[b]) for b in check.by)):
        if len(g) < 2:
            return Evaluation(no_data=f"one point{label(check, g[0].key, g[0].x, with_x=False)}: nothing to order")
        parts += _monotone_parts(check, g, 1 - alpha)
    method = ("exact: the points' values as they are" if check.exact else
              f"each step and the whole rise: {level_text(alpha)} interval of the difference of means (paired by seed)")
    return Evaluation(parts, method)


def _crossover_part(check: Crossover, g: list[tuple[Sample, Sample]], level: float) -> Part:
    diffs = [difference(a, b, level) for a, b in g]
    means = [d.diff for d in diffs]
    group = label(check, g[0][0].key, g[0][0].x, with_x=False)
    arms = tuple(s for ab in g for s in ab)
    text = _swap_text(check, g, means) + group
    n = min(d.n for d in diffs)
    if check.exact:  # the first change of sign of the means, where `at` says
        swap = _swap(means)
        ok = swap is not None and (check.at is None or _same(g[swap][0].x, check.at))
        return Part(group, text, 0.0 if ok else 1.0, 1.0 if ok else 0.0, arms, Frame(arms=True), n=n, exact=True)
    signs = [_above(d, 0.0, False) for d in diffs]  # (p above 0, p below 0) per point
    if check.at is not None:
        j = next((i for i, (a, _) in enumerate(g) if _same(a.x, check.at)), None)
        if not j:
            return Part(group, f"{'no point at' if j is None else 'nothing before'} {check.at}{group}", 1.0, 0.0, arms,
                        Frame(arms=True), n=n, exact=True)
        pairs = [(j - 1, j)]
        p_fail = best(worst((signs[j - 1][s], signs[j][s])) for s in (0, 1))  # the point before `at` and it on one side
    else:
        pairs = list(combinations(range(len(g)), 2))
        p_fail = best(worst(p[s] for p in signs) for s in (0, 1))  # every point on one side
    p_pass = best(worst((signs[i][s], signs[j][1 - s])) for i, j in pairs for s in (0, 1))
    return Part(group, text, min(1.0, 2 * len(pairs) * p_pass), min(1.0, 2 * p_fail), arms, Frame(arms=True), n=n)


def _swap(d: list[float]) -> int | None:
    """The first point whose difference has the other sign than the first non-zero one."""
    nonzero = [i for i, v in enumerate(d) if v != 0]
    return next((i for i in nonzero if (d[i] > 0) != (d[nonzero[0]] > 0)), None) if nonzero else None


def _swap_text(check: Crossover, g: list[tuple[Sample, Sample]], d: list[float]) -> str:
    swap = _swap(d)
    if swap is None:
        nonzero = [v for v in d if v != 0]
        side = "a above b" if nonzero and nonzero[0] > 0 else "a below b" if nonzero else "a = b"
        return f"no swap: {side} at all {len(g)} points"
    before = max(i for i, v in enumerate(d) if v != 0 and i < swap)
    at_ok = check.at is None or _same(g[swap][0].x, check.at)
    return (f"swaps at {axis_name(check, g[swap][0].x)} (a-b {num(d[before])} → {num(d[swap])})"
            + ("" if at_ok else f", expected at {check.at}"))


def _same(x: object, want: object) -> bool:
    a, b = numeric(x), numeric(want)
    return a == b if a is not None and b is not None else str(x) == str(want)


@evaluator(Crossover)
def crossover(check: Crossover, df: pl.DataFrame, alpha: float) -> Evaluation:
    pairs, why = matched(check, df, True)
    if why:
        return Evaluation(no_data=why)
    parts = [_crossover_part(check, g, 1 - alpha) for g in groups(pairs, lambda ab: tuple(repr(ab[0].key[b]) for b in check.by))]
    method = ("exact: the points' values as they are" if check.exact else
              f"a - b at each point: {level_text(alpha)} interval (paired by seed); a swap needs a point significantly on "
              "each side (Bonferroni over the pairs of points and both orders)")
    return Evaluation(parts, method)
