"""Check a suite's claims on the results: PASS / FAIL / INCONCLUSIVE / NO DATA, each with what it measured
and the statistics it used (harness.report.stats).

A check's points are the runs of one configuration (its seeds), one point per `by` group and axis value
(see harness/spec/claim_models.py).  Bounds compare each point's interval of the mean with the bound;
`beats` pairs the two sides' runs by seed and tests the mean difference against `margin`; an interval
that straddles the bound or the margin is INCONCLUSIVE, with the seeds that would decide it at the
observed variance.  `monotone` and `crossover` compare the points' means."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import polars as pl

from harness.report import stats
from harness.report.claim_text import axis_name as _axis_name
from harness.report.claim_text import describe, numeric
from harness.report.frame import long_format, natural, select, show
from harness.spec.claim_models import (
    SUFFIX,
    AllOf,
    AtLeast,
    AtMost,
    Beats,
    Between,
    CheckBase,
    ClaimSpec,
    Crossover,
    Monotone,
    Side,
)
from harness.spec.models import short_path

__all__ = ["ClaimResult", "Verdict", "check_claims", "combine", "describe", "evaluate", "points"]

PASS, FAIL, INCONCLUSIVE, NO_DATA, UNCHECKED = "PASS", "FAIL", "INCONCLUSIVE", "NO DATA", "not checked"
STATUSES = (PASS, FAIL, INCONCLUSIVE, NO_DATA, UNCHECKED)


@dataclass(frozen=True)
class Verdict:
    status: str
    measured: str
    method: str = ""  # the interval / test, in words


@dataclass(frozen=True)
class ClaimResult:
    claim: ClaimSpec
    status: str
    measured: str
    check: str  # the check in words
    method: str = ""

    @property
    def failed(self) -> bool:
        """What `harness report --check` exits 1 on: a FAIL or a check without data."""
        return self.status in (FAIL, NO_DATA)

    @property
    def inconclusive(self) -> bool:
        return self.status == INCONCLUSIVE


def check_claims(claims: Iterable[ClaimSpec], df: pl.DataFrame) -> list[ClaimResult]:
    out = []
    for c in claims:
        if c.check is None:
            out.append(ClaimResult(c, UNCHECKED, "", ""))
        else:
            v = evaluate(c.check, df)
            out.append(ClaimResult(c, v.status, v.measured, describe(c.check), v.method))
    return out


def combine(statuses: list[str]) -> str:
    """Every part must PASS: a FAIL decides, then missing data, then an undecided part."""
    return next((s for s in (FAIL, NO_DATA, INCONCLUSIVE) if s in statuses), PASS)


# ------------------------------------------------------------------ points
@dataclass
class Point:
    key: dict[str, Any]  # the `by` values
    x: Any
    values: list[float]
    seeds: list[int]

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)


def num(v: float, sign: str = "") -> str:
    return "nan" if math.isnan(v) else f"{v:{sign}.0f}" if abs(v) >= 100 else f"{v:{sign}.2f}"


def points(df: pl.DataFrame, check: CheckBase, side: Side | None = None, higher_is_better: bool = True) -> tuple[list[Point], int]:
    """The check's points (one per `by` group and axis value) and the number of runs behind them.  With a
    side's `best_of`, each point is the best configuration over those paths (by mean)."""
    metric = (side.metric if side and side.metric else check.metric) or ""
    sub = select(select(df, check.where), side.where if side else {})
    best_of = side.best_of if side else []
    keys = [*check.by, *best_of]
    if check.axis is None:
        long = long_format(sub.with_columns(pl.lit("").alias("_x")) if not sub.is_empty() else sub, metric, keys, "_x")
    else:
        long = long_format(sub, metric, keys, None if check.axis == SUFFIX else check.axis)
    if check.from_ is not None or check.to is not None:
        lo = check.from_ if check.from_ is not None else -math.inf
        hi = check.to if check.to is not None else math.inf
        keep = [(v := numeric(x)) is not None and lo <= v <= hi for x in long["x"].to_list()]
        long = long.filter(pl.Series(keep, dtype=pl.Boolean))
    n_runs = long["run_id"].n_unique() if not long.is_empty() else 0
    groups: dict[tuple, Point] = {}
    for k, g in long.group_by([*keys, "x"], maintain_order=True):
        groups[k] = Point(dict(zip(keys, k[:-1])), k[-1], g["value"].to_list(), g["seed"].to_list())
    pts = list(groups.values())
    if best_of:
        best: dict[tuple, Point] = {}
        for p in pts:
            at = (*[p.key[b] for b in check.by], p.x)
            if at not in best or (p.mean > best[at].mean if higher_is_better else p.mean < best[at].mean):
                best[at] = p
        pts = [Point({b: p.key[b] for b in check.by}, p.x, p.values, p.seeds) for p in best.values()]
    pts.sort(key=lambda p: (*[natural(p.key[b]) for b in check.by], natural(p.x)))
    return pts, n_runs


def _label(check: CheckBase, p: Point, with_x: bool = True) -> str:
    out = f" at {_axis_name(check, p.x)}" if with_x and check.axis is not None else ""
    group = ", ".join(f"{short_path(k)}={show(p.key[k])}" for k in check.by)
    return out + (f" ({group})" if group else "")


def _no_data(pts: list[Point], n_runs: int, check: CheckBase) -> Verdict | None:
    if not pts:
        return Verdict(NO_DATA, "no matching runs with this metric")
    if n_runs < check.min_runs:
        return Verdict(NO_DATA, f"{n_runs} runs, {check.min_runs} required")
    return None


def _interval_text(e: stats.Estimate) -> str:
    return f"{num(e.center)} [{num(e.lo)}, {num(e.hi)}]" if e.has_interval else num(e.center)


# ------------------------------------------------------------------ the checks
def evaluate(check: Any, df: pl.DataFrame) -> Verdict:
    if isinstance(check, AllOf):
        parts = [evaluate(c, df) for c in check.checks]
        methods = "; ".join(dict.fromkeys(v.method for v in parts if v.method))
        return Verdict(combine([v.status for v in parts]), "; ".join(v.measured for v in parts), methods)
    if isinstance(check, (AtLeast, AtMost, Between)):
        return _bounds(check, df)
    if isinstance(check, Beats):
        return _beats(check, df)
    if isinstance(check, Monotone):
        return _monotone(check, df)
    if isinstance(check, Crossover):
        return _crossover(check, df)
    raise TypeError(f"unknown check {type(check).__name__}")


def _estimate(p: Point, check: CheckBase) -> stats.Estimate:
    e = stats.interval(p.values, confidence=1 - check.alpha)
    if not e.has_interval and check.exact:  # taken as it is (see CheckBase.exact)
        return stats.Estimate(e.n, e.center, e.center, e.center, 0.0, "none")
    return e


def _bound_status(check: AtLeast | AtMost | Between, e: stats.Estimate) -> str:
    if not e.has_interval:
        return INCONCLUSIVE
    lo, hi = (check.value, math.inf) if isinstance(check, AtLeast) else (-math.inf, check.value) if isinstance(check, AtMost) \
        else (check.low, check.high)
    if lo <= e.lo and e.hi <= hi:
        return PASS
    if e.hi < lo or e.lo > hi:
        return FAIL
    return INCONCLUSIVE


def _method(check: CheckBase, ests: Iterable[stats.Estimate]) -> str:
    used = {e.method for e in ests}
    level = f"{100 * (1 - check.alpha):g}%"
    if check.exact and used <= {"none"}:
        return "exact: each point taken as it is (no interval)"
    names = [stats.METHODS[m] for m in ("t", "bootstrap", "none") if m in used]
    return f"{level} interval of the mean over seeds: {' / '.join(names)}"


def _bounds(check: AtLeast | AtMost | Between, df: pl.DataFrame) -> Verdict:
    pts, n_runs = points(df, check)
    if (nd := _no_data(pts, n_runs, check)) is not None:
        return nd
    ests = [_estimate(p, check) for p in pts]
    statuses = [_bound_status(check, e) for e in ests]
    status = combine(statuses)
    many = len(pts) > 1
    # the point shown: the first that decides the verdict, else the one nearest the bound
    if isinstance(check, AtLeast):
        order = sorted(range(len(pts)), key=lambda i: ests[i].lo if ests[i].has_interval else ests[i].center)
        prefix = "min " if many else ""
    elif isinstance(check, AtMost):
        order = sorted(range(len(pts)), key=lambda i: -(ests[i].hi if ests[i].has_interval else ests[i].center))
        prefix = "max " if many else ""
    else:
        order, prefix = list(range(len(pts))), ""
    i = next((j for j in order if statuses[j] == status), order[0])
    e, p = ests[i], pts[i]
    text = prefix + _interval_text(e) + _label(check, p)
    if isinstance(check, Between):
        if status == PASS:
            lo_c, hi_c = min(x.center for x in ests), max(x.center for x in ests)
            text = (f"{num(lo_c)}..{num(hi_c)}" if many else _interval_text(e)) + f" over {len(pts)} points of {n_runs} runs"
        else:
            text = _interval_text(e) + _label(check, p) + f" {'outside' if status == FAIL else 'not inside'} [{check.low:g}, {check.high:g}]"
    if status == INCONCLUSIVE:
        text += _undecided(check, e)
    return Verdict(status, text, _method(check, ests))


def _undecided(check: AtLeast | AtMost | Between, e: stats.Estimate) -> str:
    if not e.has_interval:
        return f"; {e.n} run: no interval (needs 2 or more seeds, or `exact: true`)"
    bound = check.value if not isinstance(check, Between) else min((check.low, check.high), key=lambda b: abs(b - e.center))
    need = stats.seeds_needed(e.sd, e.center - bound, 1 - check.alpha)
    return f"; ~{need} seeds would decide at this variance" if need else "; more seeds would not decide (mean on the bound)"


def _paired_values(a: Point, b: Point) -> tuple[list[float], list[float], bool]:
    """Both sides' runs aligned by seed (same seed = same data stream) when each side has one run per seed
    and they share at least two seeds; else the two samples as they are (unpaired)."""
    if len(set(a.seeds)) == len(a.seeds) and len(set(b.seeds)) == len(b.seeds):
        common = sorted(set(a.seeds) & set(b.seeds))
        if len(common) >= 2 or (len(common) == 1 and len(a.seeds) == len(b.seeds) == 1):
            ia, ib = dict(zip(a.seeds, a.values)), dict(zip(b.seeds, b.values))
            return [ia[s] for s in common], [ib[s] for s in common], True
    return a.values, b.values, False


def _matched(check: Beats | Crossover, df: pl.DataFrame, higher: bool) -> tuple[list[tuple[Point, Point]], Verdict | None]:
    pa, na = points(df, check, check.a, higher)
    pb, nb = points(df, check, check.b, higher)
    for side, pts, n in (("a", pa, na), ("b", pb, nb)):
        if (nd := _no_data(pts, n, check)) is not None:
            return [], Verdict(NO_DATA, f"side {side}: {nd.measured}")
    at_b = {(tuple(repr(v) for v in p.key.values()), repr(p.x)): p for p in pb}
    pairs = [(p, at_b[k]) for p in pa if (k := (tuple(repr(v) for v in p.key.values()), repr(p.x))) in at_b]
    if not pairs:
        return [], Verdict(NO_DATA, "sides a and b share no point")
    return pairs, None


def _beats(check: Beats, df: pl.DataFrame) -> Verdict:
    pairs, nd = _matched(check, df, check.higher_is_better)
    if nd is not None:
        return nd
    results = []
    for a, b in pairs:
        x, y, paired = _paired_values(a, b)
        better, worse = (x, y) if check.higher_is_better else (y, x)
        c = stats.compare(better, worse, check.margin, 1 - check.alpha, paired, check.test)
        if math.isnan(c.lo):
            status = (PASS if c.diff > check.margin else FAIL) if check.exact else INCONCLUSIVE
        else:
            status = PASS if c.lo > check.margin else FAIL if c.hi <= check.margin else INCONCLUSIVE
        results.append((status, c, a, b))
    status = combine([r[0] for r in results])
    shown = next(r for r in sorted(results, key=lambda r: r[1].lo if not math.isnan(r[1].lo) else r[1].diff) if r[0] == status)
    _, c, a, b = shown
    diff = f"{'a-b' if check.higher_is_better else 'b-a'} {num(c.diff, '+')}"
    ci = f" [{num(c.lo, '+')}, {num(c.hi, '+')}]" if not math.isnan(c.lo) else ""
    p = f", p = {c.pvalue:.2g}" if not math.isnan(c.pvalue) else ""
    text = ("worst: " if len(results) > 1 else "") + f"{num(a.mean)} vs {num(b.mean)}{_label(check, a)}: {diff}{ci}{p} ({c.n} {'seeds' if c.paired else 'runs'})"
    if status == INCONCLUSIVE:
        text += f"; ~{c.seeds_needed} seeds would decide at this variance" if c.seeds_needed else \
            ("; one run per side: no interval (needs 2 or more seeds, or `exact: true`)" if math.isnan(c.lo) else "")
    level = f"{100 * (1 - check.alpha):g}%"
    method = ("exact: each side taken as it is (no interval)" if check.exact and math.isnan(c.lo) else
              f"{'paired by seed' if c.paired else 'unpaired'}: {level} t-interval of the mean difference, one-sided {c.test} "
              f"of difference > margin {check.margin:g}")
    return Verdict(status, text, method)


def _groups(pts: list[Any], key: Any) -> list[list[Any]]:
    out: dict[tuple, list[Any]] = {}
    for p in pts:
        out.setdefault(key(p), []).append(p)
    return list(out.values())


def _monotone(check: Monotone, df: pl.DataFrame) -> Verdict:
    pts, n_runs = points(df, check)
    if (nd := _no_data(pts, n_runs, check)) is not None:
        return nd
    sign = 1.0 if check.direction == "increasing" else -1.0
    worst: tuple[float, Point, Point] | None = None
    for g in _groups(pts, lambda p: tuple(repr(p.key[b]) for b in check.by)):
        if len(g) < 2:
            return Verdict(NO_DATA, f"one point{_label(check, g[0], with_x=False)}: nothing to order")
        for p0, p1 in zip(g, g[1:]):
            step = sign * (p1.mean - p0.mean)
            if worst is None or step < worst[0]:
                worst = (step, p0, p1)
    assert worst is not None
    step, p0, p1 = worst
    where = f"{_axis_name(check, p0.x)} → {show(p1.x)}{_label(check, p1, with_x=False)}"
    method = "means over seeds, step by step (no test)"
    if step < -check.tolerance:
        return Verdict(FAIL, f"{num(p0.mean)} → {num(p1.mean)} at {where}", method)
    if not check.by:
        return Verdict(PASS, f"{num(pts[0].mean)} → {num(pts[-1].mean)} over {_axis_name(check, pts[0].x)}..{show(pts[-1].x)}", method)
    return Verdict(PASS, f"smallest step {num(sign * step)} at {where}", method)


def _same(x: Any, want: Any) -> bool:
    a, b = numeric(x), numeric(want)
    return a == b if a is not None and b is not None else str(x) == str(want)


def _crossover(check: Crossover, df: pl.DataFrame) -> Verdict:
    pairs, nd = _matched(check, df, True)
    if nd is not None:
        return nd
    texts, ok = [], True
    for g in _groups(pairs, lambda ab: tuple(repr(ab[0].key[b]) for b in check.by)):
        d = [a.mean - b.mean for a, b in g]
        nonzero = [i for i, v in enumerate(d) if v != 0]
        swap = next((i for i in nonzero if (d[i] > 0) != (d[nonzero[0]] > 0)), None) if nonzero else None
        group = _label(check, g[0][0], with_x=False)
        if swap is None:
            ok = False
            side = "a above b" if nonzero and d[nonzero[0]] > 0 else "a below b" if nonzero else "a = b"
            texts.append(f"no swap: {side} at all {len(g)} points{group}")
            continue
        before = max(i for i in nonzero if i < swap)
        at_ok = check.at is None or _same(g[swap][0].x, check.at)
        ok &= at_ok
        texts.append(f"swaps at {_axis_name(check, g[swap][0].x)} (a-b {num(d[before])} → {num(d[swap])}){group}"
                     + ("" if at_ok else f", expected at {check.at}"))
    return Verdict(PASS if ok else FAIL, "; ".join(texts), "means over seeds (no test)")
