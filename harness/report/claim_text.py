"""A claim's check in words (the claims table's `check` column) and the names of its axis values."""

from __future__ import annotations

from typing import Any

from harness.report.frame import show
from harness.spec.claim_models import SUFFIX, AllOf, AtLeast, AtMost, Beats, Between, CheckBase, Monotone, Side
from harness.spec.models import short_path


def numeric(x: Any) -> float | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, (int, float)):
        return float(x)
    try:
        return float(str(x))
    except ValueError:
        return None


def axis_name(check: CheckBase, x: Any) -> str:
    if check.axis is None:
        return ""
    if check.axis == SUFFIX:
        name = (check.metric or "").rstrip("_/").split("/")[-1]
        return f"{name} {show(x)}" if numeric(x) is not None and name else show(x)
    return f"{short_path(check.axis)} {show(x)}"


def _where_text(where: dict[str, Any]) -> str:
    def one(v: Any) -> str:
        if isinstance(v, list):  # any of several values; a list of numbers is a list axis value
            return str(v) if all(isinstance(u, (int, float)) for u in v) else "/".join(map(one, v))
        return '""' if v == "" else str(v)

    return ", ".join(f"{short_path(k)}={one(v)}" for k, v in where.items())


def _scope(check: CheckBase) -> str:
    parts = [_where_text(check.where)] if check.where else []
    if check.axis is not None:
        name = axis_name(check, 0).rsplit(" ", 1)[0] if check.axis == SUFFIX else short_path(check.axis)
        rng = "" if check.from_ is None and check.to is None else f" {'' if check.from_ is None else f'{check.from_:g}'}..{'' if check.to is None else f'{check.to:g}'}"
        parts.append(f"every {name}{rng}")
    if check.by:
        parts.append("per " + ", ".join(map(short_path, check.by)))
    return f" ({'; '.join(parts)})" if parts else ""


def _side_text(name: str, side: Side, check: CheckBase) -> str:
    bits = ([side.metric] if side.metric and side.metric != check.metric else []) + ([_where_text(side.where)] if side.where else [])
    bits += [f"best of {', '.join(map(short_path, side.best_of))} by {side.select_on}"] if side.best_of else []
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
        rise = f", rise > {check.min_rise:g}" if check.min_rise else ""
        return f"{metric} {check.direction}{tol}{rise}{_scope(check)}"
    sides = f"{_side_text('a', check.a, check)}; {_side_text('b', check.b, check)}"
    if isinstance(check, Beats):
        op = ">" if check.higher_is_better else "<"
        shift = check.margin if check.higher_is_better else -check.margin  # a > b + margin, or a < b - margin
        margin = f" {'+' if shift > 0 else '-'} {abs(shift):g}" if shift else ""
        return f"{metric + ': ' if metric else ''}a {op} b{margin}{_scope(check)} [{sides}]"
    at = f" at {check.at}" if check.at is not None else ""
    return f"{metric + ': ' if metric else ''}a - b changes sign{at}{_scope(check)} [{sides}]"
