"""Check a suite's claims on the results: PASS / FAIL / NO DATA, each with the value it measured.

A check's points are the means over runs (the seeds of a configuration) of one metric, one point per
`by` group and axis value (see harness/spec/claim_models.py)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.report.frame import fill_keys, long_format, select
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

PASS, FAIL, NO_DATA, UNCHECKED = "PASS", "FAIL", "NO DATA", "not checked"


@dataclass(frozen=True)
class Verdict:
    status: str
    measured: str


@dataclass(frozen=True)
class ClaimResult:
    claim: ClaimSpec
    status: str
    measured: str
    check: str  # the check in words

    @property
    def failed(self) -> bool:
        """What `harness report --check` fails on: a FAIL or a check without data."""
        return self.status in (FAIL, NO_DATA)


def check_claims(claims: Iterable[ClaimSpec], df: pd.DataFrame) -> list[ClaimResult]:
    out = []
    for c in claims:
        if c.check is None:
            out.append(ClaimResult(c, UNCHECKED, "", ""))
        else:
            v = evaluate(c.check, df)
            out.append(ClaimResult(c, v.status, v.measured, describe(c.check)))
    return out


# ------------------------------------------------------------------ points
@dataclass
class Points:
    frame: pd.DataFrame  # by..., x, value (mean over the runs of the point)
    n_runs: int


def num(v: float) -> str:
    return "nan" if math.isnan(v) else f"{v:.0f}" if abs(v) >= 100 else f"{v:.2f}"


def _short(path: str) -> str:
    """model.pos_emb -> pos_emb; a component's name by its component: task.name -> task."""
    parts = path.split(".")
    return parts[-2] if len(parts) > 1 and parts[-1] == "name" else parts[-1]


def _numeric(x: Any) -> float | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, (int, float)):
        return float(x)
    try:
        return float(str(x))
    except ValueError:
        return None


def points(df: pd.DataFrame, check: CheckBase, side: Side | None = None, higher_is_better: bool = True) -> Points:
    metric = (side.metric if side and side.metric else check.metric) or ""
    sub = select(select(df, check.where), side.where if side else {})
    best_of = side.best_of if side else []
    keys = [*check.by, *best_of]
    if check.axis is None:
        have = sub.dropna(subset=[metric]) if metric in sub.columns else sub.iloc[0:0]
        long = fill_keys(have, keys).assign(x="", value=have[metric] if metric in have.columns else [])
    else:
        long = long_format(sub, metric, keys, None if check.axis == SUFFIX else check.axis)
    if check.from_ is not None or check.to is not None:
        xs = long["x"].map(_numeric).astype(float)
        keep = xs.notna() & (xs >= (check.from_ if check.from_ is not None else -math.inf)) & (xs <= (check.to if check.to is not None else math.inf))
        long = long[keep]
    n_runs = int(long["run_id"].nunique()) if "run_id" in long.columns else len(long)
    if long.empty:
        return Points(pd.DataFrame(columns=[*check.by, "x", "value"]), n_runs)
    means = long.groupby([*keys, "x"], sort=False)["value"].mean().reset_index()
    if best_of:
        pick = means.groupby([*check.by, "x"], sort=False)["value"]
        means = (pick.max() if higher_is_better else pick.min()).reset_index()
    means["_order"] = means["x"].map(lambda x: (_numeric(x) is None, _numeric(x) or 0.0, str(x)))
    return Points(means.sort_values([*check.by, "_order"], kind="stable").drop(columns="_order").reset_index(drop=True), n_runs)


def _val(v: Any) -> Any:
    """4.0 -> 4 (a config column turns float when other runs lack it)."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _axis_name(check: CheckBase, x: Any) -> str:
    x = _val(x)
    if check.axis is None:
        return ""
    if check.axis == SUFFIX:
        name = (check.metric or "").rstrip("_/").split("/")[-1]
        return f"{name} {x}" if _numeric(x) is not None and name else str(x)
    return f"{_short(check.axis)} {x}"


def _label(check: CheckBase, row: dict[str, Any], with_x: bool = True) -> str:
    out = f" at {_axis_name(check, row['x'])}" if with_x and check.axis is not None else ""
    group = ", ".join(f"{_short(k)}={_val(row[k])}" for k in check.by)
    return out + (f" ({group})" if group else "")


def _no_data(p: Points, check: CheckBase) -> Verdict | None:
    if p.frame.empty:
        return Verdict(NO_DATA, "no matching runs with this metric")
    if p.n_runs < check.min_runs:
        return Verdict(NO_DATA, f"{p.n_runs} runs, {check.min_runs} required")
    return None


# ------------------------------------------------------------------ the checks
def evaluate(check: Any, df: pd.DataFrame) -> Verdict:
    if isinstance(check, AllOf):
        parts = [evaluate(c, df) for c in check.checks]
        status = FAIL if any(v.status == FAIL for v in parts) else NO_DATA if any(v.status == NO_DATA for v in parts) else PASS
        return Verdict(status, "; ".join(v.measured for v in parts))
    if isinstance(check, (AtLeast, AtMost, Between)):
        return _bounds(check, df)
    if isinstance(check, Beats):
        return _beats(check, df)
    if isinstance(check, Monotone):
        return _monotone(check, df)
    if isinstance(check, Crossover):
        return _crossover(check, df)
    raise TypeError(f"unknown check {type(check).__name__}")


def _bounds(check: AtLeast | AtMost | Between, df: pd.DataFrame) -> Verdict:
    p = points(df, check)
    if (nd := _no_data(p, check)) is not None:
        return nd
    rows, many = p.frame.to_dict("records"), len(p.frame) > 1  # records keep each column's type (a row Series would not)
    lo, hi = min(rows, key=lambda r: r["value"]), max(rows, key=lambda r: r["value"])
    if isinstance(check, AtLeast):
        return Verdict(PASS if lo["value"] >= check.value else FAIL, ("min " if many else "") + num(lo["value"]) + _label(check, lo))
    if isinstance(check, AtMost):
        return Verdict(PASS if hi["value"] <= check.value else FAIL, ("max " if many else "") + num(hi["value"]) + _label(check, hi))
    outside = [r for r in rows if not check.low <= r["value"] <= check.high]
    if outside:
        return Verdict(FAIL, f"{num(outside[0]['value'])}{_label(check, outside[0])} outside [{check.low:g}, {check.high:g}]")
    span = f"{num(lo['value'])}..{num(hi['value'])}" if many else num(lo["value"])
    return Verdict(PASS, f"{span} over {len(rows)} points of {p.n_runs} runs")


def _paired(check: Beats | Crossover, df: pd.DataFrame) -> tuple[pd.DataFrame | None, Verdict | None]:
    higher = check.higher_is_better if isinstance(check, Beats) else True
    pa, pb = points(df, check, check.a, higher), points(df, check, check.b, higher)
    for side, p in (("a", pa), ("b", pb)):
        if (nd := _no_data(p, check)) is not None:
            return None, Verdict(NO_DATA, f"side {side}: {nd.measured}")
    both = pa.frame.merge(pb.frame, on=[*check.by, "x"], suffixes=("_a", "_b"), sort=False)
    if both.empty:
        return None, Verdict(NO_DATA, "sides a and b share no point")
    both["d"] = both["value_a"] - both["value_b"]
    return both, None


def _beats(check: Beats, df: pd.DataFrame) -> Verdict:
    both, nd = _paired(check, df)
    if nd is not None:
        return nd
    sign = 1.0 if check.higher_is_better else -1.0
    rows = both.to_dict("records")
    row = min(rows, key=lambda r: sign * r["d"])
    ok = all(sign * r["d"] > check.margin for r in rows)
    text = f"{num(row['value_a'])} vs {num(row['value_b'])}{_label(check, row)}"
    return Verdict(PASS if ok else FAIL, ("worst: " if len(both) > 1 else "") + text)


def _groups(frame: pd.DataFrame, by: list[str]) -> list[pd.DataFrame]:
    return [g for _, g in frame.groupby(by, sort=False)] if by else [frame]


def _monotone(check: Monotone, df: pd.DataFrame) -> Verdict:
    p = points(df, check)
    if (nd := _no_data(p, check)) is not None:
        return nd
    sign = 1.0 if check.direction == "increasing" else -1.0
    worst: tuple[float, Any, Any] | None = None  # (signed step, from row, to row)
    for g in _groups(p.frame, check.by):
        if len(g) < 2:
            return Verdict(NO_DATA, f"one point{_label(check, g.to_dict('records')[0], with_x=False)}: nothing to order")
        rows = g.to_dict("records")
        for r0, r1 in zip(rows, rows[1:]):
            step = sign * (r1["value"] - r0["value"])
            if worst is None or step < worst[0]:
                worst = (step, r0, r1)
    assert worst is not None
    step, r0, r1 = worst
    where = f"{_axis_name(check, r0['x'])} → {_val(r1['x'])}{_label(check, r1, with_x=False)}"
    if step < -check.tolerance:
        return Verdict(FAIL, f"{num(r0['value'])} → {num(r1['value'])} at {where}")
    if not check.by:
        first, last = p.frame.to_dict("records")[0], p.frame.to_dict("records")[-1]
        return Verdict(PASS, f"{num(first['value'])} → {num(last['value'])} over {_axis_name(check, first['x'])}..{_val(last['x'])}")
    return Verdict(PASS, f"smallest step {num(sign * step)} at {where}")


def _same(x: Any, want: Any) -> bool:
    a, b = _numeric(x), _numeric(want)
    return a == b if a is not None and b is not None else str(x) == str(want)


def _crossover(check: Crossover, df: pd.DataFrame) -> Verdict:
    both, nd = _paired(check, df)
    if nd is not None:
        return nd
    texts, ok = [], True
    for g in _groups(both, check.by):
        rows = g.to_dict("records")
        d = [r["d"] for r in rows]
        nonzero = [i for i, v in enumerate(d) if v != 0]
        swap = next((i for i in nonzero if (d[i] > 0) != (d[nonzero[0]] > 0)), None) if nonzero else None
        group = _label(check, rows[0], with_x=False)
        if swap is None:
            ok = False
            side = "a above b" if nonzero and d[nonzero[0]] > 0 else "a below b" if nonzero else "a = b"
            texts.append(f"no swap: {side} at all {len(g)} points{group}")
            continue
        before = max(i for i in nonzero if i < swap)
        at_ok = check.at is None or _same(rows[swap]["x"], check.at)
        ok &= at_ok
        texts.append(f"swaps at {_axis_name(check, rows[swap]['x'])} (a-b {num(d[before])} → {num(d[swap])}){group}"
                     + ("" if at_ok else f", expected at {check.at}"))
    return Verdict(PASS if ok else FAIL, "; ".join(texts))


# ------------------------------------------------------------------ the check in words
def _where_text(where: dict[str, Any]) -> str:
    def show(v: Any) -> str:
        return "/".join(map(show, v)) if isinstance(v, list) else '""' if v == "" else str(v)

    return ", ".join(f"{_short(k)}={show(v)}" for k, v in where.items())


def _scope(check: CheckBase) -> str:
    parts = [_where_text(check.where)] if check.where else []
    if check.axis is not None:
        name = _axis_name(check, 0).rsplit(" ", 1)[0] if check.axis == SUFFIX else _short(check.axis)
        rng = "" if check.from_ is None and check.to is None else f" {'' if check.from_ is None else f'{check.from_:g}'}..{'' if check.to is None else f'{check.to:g}'}"
        parts.append(f"every {name}{rng}")
    if check.by:
        parts.append("per " + ", ".join(map(_short, check.by)))
    return f" ({'; '.join(parts)})" if parts else ""


def _side_text(name: str, side: Side, check: CheckBase) -> str:
    bits = ([side.metric] if side.metric and side.metric != check.metric else []) + ([_where_text(side.where)] if side.where else [])
    bits += [f"best of {', '.join(map(_short, side.best_of))}"] if side.best_of else []
    return f"{name}: {', '.join(bits) or 'all'}"


def describe(check: Any) -> str:
    if isinstance(check, AllOf):
        return " AND ".join(describe(c) for c in check.checks)
    metric = check.metric or ""
    if isinstance(check, AtLeast):
        return f"{metric} ≥ {check.value:g}{_scope(check)}"
    if isinstance(check, AtMost):
        return f"{metric} ≤ {check.value:g}{_scope(check)}"
    if isinstance(check, Between):
        return f"{check.low:g} ≤ {metric} ≤ {check.high:g}{_scope(check)}"
    if isinstance(check, Monotone):
        tol = f", tolerance {check.tolerance:g}" if check.tolerance else ""
        return f"{metric} {check.direction}{tol}{_scope(check)}"
    sides = f"{_side_text('a', check.a, check)}; {_side_text('b', check.b, check)}"
    if isinstance(check, Beats):
        op = ">" if check.higher_is_better else "<"
        shift = check.margin if check.higher_is_better else -check.margin  # a > b + margin, or a < b - margin
        margin = f" {'+' if shift > 0 else '-'} {abs(shift):g}" if shift else ""
        return f"{metric + ': ' if metric else ''}a {op} b{margin}{_scope(check)} [{sides}]"
    at = f" at {check.at}" if check.at is not None else ""
    return f"{metric + ': ' if metric else ''}a - b changes sign{at}{_scope(check)} [{sides}]"
