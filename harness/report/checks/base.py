"""What every check kind works with: the samples a check compares (the runs of one selection at one point),
the parts it decides (each with one-sided p-values both ways, what it measured, and its power), and the
registry that maps a check's spec class to its evaluator (a new kind: a spec model in
harness/spec/claim_models.py and one module here that registers its evaluator).

    evaluation = evaluate(check, frame, alpha)   # -> Evaluation: parts (or why there is no data), method

A part's `p_pass` is the one-sided p-value against the claim at that part (small: it holds there),
`p_fail` the one for it (small: it does not).  How parts and claims become verdicts (intersection-union
for PASS, Bonferroni for FAIL, reference arms, the family of claims) is harness/report/claims.py."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from harness.report import stats
from harness.report.claim_text import axis_name, numeric
from harness.report.frame import items_of, long_format, natural, select, show
from harness.spec.claim_models import SUFFIX, CheckBase, Side
from harness.spec.models import short_path


@dataclass(frozen=True)
class Sample:
    """The runs of one selection at one point of a check: their values of `metric`, by seed."""

    metric: str  # the full metric name (with an axis suffix)
    key: dict[str, Any]  # the `by` values
    x: Any  # the axis value ("" without an axis)
    values: tuple[float, ...]
    seeds: tuple[int, ...]
    items: int | None  # test items behind each value (a proportion), else None
    run_ids: frozenset[str]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values) if self.values else math.nan

    def estimate(self, level: float) -> stats.Estimate:
        return stats.interval(self.values, items=self.items, level=level)


def paired(a: Sample, b: Sample) -> tuple[list[float], list[float], bool]:
    """Both samples aligned by seed (same seed = same data stream) when each has one run per seed and they
    share at least two seeds; else the two samples as they are (unpaired)."""
    if len(set(a.seeds)) == len(a.seeds) and len(set(b.seeds)) == len(b.seeds):
        common = sorted(set(a.seeds) & set(b.seeds))
        if len(common) >= 2 or (len(common) == 1 and a.n == b.n == 1):
            ia, ib = dict(zip(a.seeds, a.values)), dict(zip(b.seeds, b.values))
            return [ia[s] for s in common], [ib[s] for s in common], True
    return list(a.values), list(b.values), False


def difference(a: Sample, b: Sample, level: float) -> stats.Difference:
    x, y, is_paired = paired(a, b)
    return stats.difference(x, y, is_paired, a.items, b.items, level)


@dataclass(frozen=True)
class Frame:
    """What a part asks of the suite's reference arms (harness/report/checks/references.py): `gap`, the
    headroom (ceiling - floor) the claim needs; with `bound`, the ceiling must get past the bound, and for a
    bound the arm must reach (not stay short of) the floor must not already; `arms`: the compared arms must
    not all sit at the floor, nor all at the ceiling."""

    gap: float = 0.0
    bound: float | None = None
    above: bool = True  # the claim puts the arm above the bound (at_least), or below it (at_most)
    arms: bool = False


@dataclass(frozen=True)
class Part:
    """One decision of a check: a point, a step of a curve, a pair of sides at one point."""

    label: str  # where, in words
    text: str  # what was measured here
    p_pass: float  # one-sided p-value against the claim here (nan: undecidable, e.g. too few seeds)
    p_fail: float  # one-sided p-value for it
    arms: tuple[Sample, ...]  # the selections compared here (the reference arms are read at their points)
    frame: Frame = Frame()
    gap: float = math.nan  # the estimate's distance to the bound or margin (positive: toward PASS)
    detectable: float = math.nan  # the smallest true distance the seeds in hand detect at 80% power
    seeds_needed: int | None = None  # the seeds that would detect the observed distance at 80% power
    noise_var: float = 0.0  # the test items' variance behind the estimate (seeds cannot average it away)
    n: int = 0  # seeds (or runs) behind the estimate
    exact: bool = False
    arm_names: tuple[str, ...] = ()  # how the report names each arm (default: its axis value)


@dataclass(frozen=True)
class Evaluation:
    parts: list[Part] = field(default_factory=list)
    method: str = ""  # the statistics used, in words
    no_data: str = ""  # why nothing could be checked (NO DATA)
    subs: list[Evaluation] = field(default_factory=list)  # an `all` check's parts, one evaluation each
    passed: str = ""  # what to show when every part passes, if not the weakest part (e.g. a range over many points)

    def all_parts(self) -> list[Part]:
        return [p for s in self.subs for p in s.all_parts()] if self.subs else list(self.parts)


Evaluator = Callable[[Any, pl.DataFrame, float], Evaluation]
EVALUATORS: dict[type, Evaluator] = {}


def evaluator(kind: type) -> Callable[[Evaluator], Evaluator]:
    """Register the evaluator of a check spec class: evaluate(check, frame, alpha) -> Evaluation."""

    def deco(fn: Evaluator) -> Evaluator:
        if kind in EVALUATORS:
            raise ValueError(f"check kind {kind.__name__} has two evaluators")
        EVALUATORS[kind] = fn
        return fn

    return deco


def evaluate(check: Any, df: pl.DataFrame, alpha: float) -> Evaluation:
    try:
        fn = EVALUATORS[type(check)]
    except KeyError:
        raise TypeError(f"no evaluator for check kind {type(check).__name__}") from None
    return fn(check, df, alpha)


# ------------------------------------------------------------------ points
def num(v: float, sign: str = "") -> str:
    return "nan" if math.isnan(v) else f"{v:{sign}.0f}" if abs(v) >= 100 else f"{v:{sign}.2f}"


def interval_text(e: stats.Estimate) -> str:
    return f"{num(e.center)} [{num(e.lo)}, {num(e.hi)}]" if e.has_interval else num(e.center)


def label(check: CheckBase, key: dict[str, Any], x: Any, with_x: bool = True) -> str:
    out = f" at {axis_name(check, x)}" if with_x and check.axis is not None else ""
    group = ", ".join(f"{short_path(k)}={show(key[k])}" for k in check.by)
    return out + (f" ({group})" if group else "")


def points(df: pl.DataFrame, check: CheckBase, side: Side | None = None, higher_is_better: bool = True) -> tuple[list[Sample], int]:
    """The check's samples (one per `by` group and axis value) and the number of runs behind them.  With a
    side's `best_of`, each point is the configuration over those paths with the best mean of `select_on`
    (a validation metric), reported on the side's metric."""
    metric = (side.metric if side and side.metric else check.metric) or ""
    sub = select(select(df, check.where), side.where if side else {})
    best_of = side.best_of if side else []
    keys = [*check.by, *best_of]
    long = _long(sub, check, metric, keys)
    if check.from_ is not None or check.to is not None:
        lo = check.from_ if check.from_ is not None else -math.inf
        hi = check.to if check.to is not None else math.inf
        keep = [(v := numeric(x)) is not None and lo <= v <= hi for x in long["x"].to_list()]
        long = long.filter(pl.Series(keep, dtype=pl.Boolean))
    n_runs = long["run_id"].n_unique() if not long.is_empty() else 0
    names = _suffix_names(sub, metric) if check.axis == SUFFIX else {}
    pts = [Sample(names.get(k[-1], metric), dict(zip(keys, k[:-1])), k[-1], tuple(g["value"].to_list()),
                  tuple(g["seed"].to_list()), items_of(g["items"].to_list()), frozenset(g["run_id"].to_list()))
           for k, g in long.group_by([*keys, "x"], maintain_order=True)]
    if best_of and side is not None and side.select_on is not None:
        pts = _best(pts, sub, check, side.select_on, higher_is_better)
    pts.sort(key=lambda p: (*[natural(p.key[b]) for b in check.by], natural(p.x)))
    return pts, n_runs


def _long(sub: pl.DataFrame, check: CheckBase, metric: str, keys: list[str]) -> pl.DataFrame:
    if check.axis is None:
        framed = sub.with_columns(pl.lit("").alias("_x")) if not sub.is_empty() else sub
        return long_format(framed, metric, keys, "_x")
    return long_format(sub, metric, keys, None if check.axis == SUFFIX else check.axis)


def _suffix_names(sub: pl.DataFrame, prefix: str) -> dict[Any, str]:
    """Axis value -> the metric name it came from (`exact/len_` + 5 -> exact/len_05)."""
    out: dict[Any, str] = {}
    for c in sub.columns:
        if c.startswith(prefix) and len(c) > len(prefix):
            rest = c[len(prefix):]
            v = int(rest) if rest.isdigit() else rest
            out[v] = out[str(v)] = c
    return out


def _best(pts: list[Sample], sub: pl.DataFrame, check: CheckBase, select_on: str, higher: bool) -> list[Sample]:
    """Per `by` group and axis value, the sample whose runs have the best mean of `select_on`."""
    score = dict(zip(sub["run_id"].to_list(), sub[select_on].to_list())) if select_on in sub.columns else {}

    def mean_of(p: Sample) -> float:
        vals = [v for r in p.run_ids if (v := score.get(r)) is not None and v == v]
        return sum(vals) / len(vals) if vals else -math.inf if higher else math.inf

    best: dict[tuple, Sample] = {}
    for p in pts:
        at = (*[repr(p.key[b]) for b in check.by], repr(p.x))
        if at not in best or (mean_of(p) > mean_of(best[at]) if higher else mean_of(p) < mean_of(best[at])):
            best[at] = p
    return [Sample(p.metric, {b: p.key[b] for b in check.by}, p.x, p.values, p.seeds, p.items, p.run_ids)
            for p in best.values()]


def no_data(pts: list[Sample], n_runs: int, check: CheckBase) -> str:
    if not pts:
        return "no matching runs with this metric"
    if n_runs < check.min_runs:
        return f"{n_runs} runs, {check.min_runs} required"
    return ""


def groups(items: list[Any], key: Callable[[Any], tuple]) -> list[list[Any]]:
    out: dict[tuple, list[Any]] = {}
    for it in items:
        out.setdefault(key(it), []).append(it)
    return list(out.values())


def worst(ps: Iterable[float]) -> float:
    """The largest p-value, nan when any is nan (an intersection holds only where every part is decided)."""
    ps = list(ps)
    return math.nan if not ps or any(math.isnan(p) for p in ps) else max(ps)


def best(ps: Iterable[float]) -> float:
    """The smallest decided p-value (a union: undecided parts cannot carry it), nan when none is decided."""
    decided = [p for p in ps if not math.isnan(p)]
    return min(decided) if decided else math.nan


def level_text(alpha: float) -> str:
    return f"{100 * (1 - alpha):g}%"
