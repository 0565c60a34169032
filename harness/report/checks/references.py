"""Reference arms at a check's part: the floor and the ceiling the claim is read against, the headroom
between them, and why the part cannot test its claim (UNTESTABLE) when it cannot.

A reference (claim_models.ReferenceSpec) at an arm: the runs its `where` selects that share the arm's value
of each `match` path (read from the arm's own runs), on the arm's metric.  With several floors (ceilings),
the best one frames the part: the floor nothing-learned must beat, the ceiling the task allows.  A part
cannot test its claim (each rule with its numbers in the reason) when
- the headroom (ceiling - floor, its interval at the claim's level; with both declared) is not verified above
  what the claim needs (`Frame.gap`: twice a `beats` margin or a `monotone` rise, else above 0);
- for a bound: the ceiling does not get past it (nothing at this scale can), or, for a bound the arm must
  reach, the floor already does (the trivial arm passes);
- for a comparison (`Frame.arms`): every compared arm is within noise of the floor, or every one within noise of
  the ceiling (each arm with 3 or more seeds; not where an arm is a reference itself, e.g. "JEPA beats the
  untrained encoder": that is the claim's own test)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from harness.report import stats
from harness.report.checks.base import Part, Sample, difference, num
from harness.report.frame import items_of, long_format, select, show
from harness.spec.claim_models import ReferenceSpec


@dataclass(frozen=True)
class Reference:
    name: str
    spec: ReferenceSpec
    sample: Sample | None
    why: str = ""  # why there is no sample


@dataclass(frozen=True)
class Framing:
    """The reference arms at one part and what they say of it."""

    floor: Reference | None
    ceiling: Reference | None
    headroom: stats.Difference | None  # ceiling - floor, in the better direction
    higher: bool  # higher is better (the ceiling's side)
    untestable: str = ""  # why the part cannot test its claim ("": it can)
    missing: str = ""  # a declared reference without data here (the claim is NO DATA)
    arms: str = ""  # each compared arm against the floor, in words

    def text(self, level: float) -> str:
        """The headroom with both references, as the claims table shows it."""
        if self.missing:
            return self.missing
        h = self.headroom
        if h is None or self.floor is None or self.ceiling is None:
            only = self.floor or self.ceiling
            if only is None:
                return "–"
            role = "floor" if self.floor else "ceiling"
            return (f"no {'ceiling' if self.floor else 'floor'} declared: headroom unknown ({role} {only.name} "
                    f"{_value(only.sample, level)})" + (f"; {self.arms}" if self.arms else ""))
        ci = f" [{num(h.lo, '+')}, {num(h.hi, '+')}]" if h.has_interval else " (no interval)"
        f, c = self.floor.sample, self.ceiling.sample
        refs = f"{self.ceiling.name} {_value(c, level)} − {self.floor.name} {_value(f, level)}"
        return f"{num(h.diff, '+')}{ci} ({refs})" + (f"; {self.arms}" if self.arms else "")


def _value(s: Sample | None, level: float) -> str:
    if s is None:
        return "–"
    e = s.estimate(level)
    return f"{num(e.center)} [{num(e.lo)}, {num(e.hi)}]" if e.has_interval else num(e.center)


def reference_at(df: pl.DataFrame, name: str, spec: ReferenceSpec, arm: Sample) -> Reference:
    """The reference's runs at the arm's point (module docstring), on the arm's metric."""
    sub = select(df, spec.where)
    if sub.is_empty():
        return Reference(name, spec, None, f"reference '{name}': no runs with results (where: {dict(spec.where)})")
    arm_rows = df.filter(pl.col("run_id").is_in(sorted(arm.run_ids)))
    for path in spec.match:
        if path not in arm_rows.columns:
            return Reference(name, spec, None, f"reference '{name}' is matched on {path}, which the compared runs do not have")
        values = {repr(v): v for v in arm_rows[path].to_list()}
        if len(values) != 1:
            return Reference(name, spec, None, f"reference '{name}' is matched on {path}, which varies within the compared "
                                               f"runs ({', '.join(show(v) for v in values.values())}): fix it in the claim")
        sub = select(sub, {path: next(iter(values.values()))})
    long = long_format(sub.with_columns(pl.lit("").alias("_x")) if not sub.is_empty() else sub, arm.metric, [], "_x")
    if long.is_empty():
        return Reference(name, spec, None, f"reference '{name}': no run logs {arm.metric} at this point")
    return Reference(name, spec, Sample(arm.metric, {}, arm.x, tuple(long["value"].to_list()), tuple(long["seed"].to_list()),
                                        items_of(long["items"].to_list()), frozenset(long["run_id"].to_list())))


def _best(refs: list[Reference], higher: bool) -> Reference | None:
    found = [r for r in refs if r.sample is not None]
    if not found:
        return None
    return (max if higher else min)(found, key=lambda r: r.sample.mean)


def frame_part(df: pl.DataFrame, part: Part, refs: Mapping[str, ReferenceSpec], alpha: float,
               higher: bool | None = None) -> Framing | None:
    """The reference arms at `part` (None when the claim reads none).  `higher`: whether higher is better
    (a `beats` check says; else the ceiling's side of the floor).  With only a floor (or only a ceiling)
    declared, the rules that need both (the headroom) are not applied, and the text says so."""
    if not refs or not part.arms:
        return None
    level = 1 - alpha
    at = [reference_at(df, name, spec, part.arms[0]) for name, spec in refs.items()]
    missing = [r.why for r in at if r.sample is None]
    if missing:
        return Framing(None, None, None, True, missing="; ".join(missing))
    floors, ceilings = [r for r in at if r.spec.role == "floor"], [r for r in at if r.spec.role == "ceiling"]
    if higher is None:
        higher = not (floors and ceilings) or _best(ceilings, True).sample.mean >= _best(floors, True).sample.mean
    floor, ceiling = _best(floors, higher), _best(ceilings, higher)
    head = None
    if floor is not None and ceiling is not None:
        head = difference(ceiling.sample, floor.sample, level) if higher else difference(floor.sample, ceiling.sample, level)
    framing = Framing(floor, ceiling, head, higher)
    arms_text, crowded = _arms(part, floor, ceiling, at, level)
    reason = _reason(part, framing, level) or crowded
    return Framing(floor, ceiling, head, higher, reason, arms=arms_text)


def _reason(part: Part, f: Framing, level: float) -> str:
    h, frame = f.headroom, part.frame
    if h is not None and f.floor is not None and f.ceiling is not None:
        refs = f"{f.ceiling.name} {_value(f.ceiling.sample, level)}, {f.floor.name} {_value(f.floor.sample, level)}"
        if not h.has_interval or h.lo <= frame.gap:
            need = f"{frame.gap:g}" if frame.gap else "0"
            ci = f" [{num(h.lo, '+')}, {num(h.hi, '+')}]" if h.has_interval else " (no interval: too few seeds)"
            return f"headroom {num(h.diff, '+')}{ci} is not verified above {need} ({refs})"
    if frame.bound is None:
        return ""
    v = frame.bound
    sign = 1 if f.higher else -1

    def past(s: Sample) -> bool:  # the interval wholly on the better side of the bound
        e = s.estimate(level)
        return e.has_interval and (e.lo > v if sign > 0 else e.hi < v)

    def short(s: Sample) -> bool:  # wholly on the worse side
        e = s.estimate(level)
        return e.has_interval and (e.hi < v if sign > 0 else e.lo > v)

    if f.ceiling is not None and not past(f.ceiling.sample):
        return f"the ceiling {f.ceiling.name} {_value(f.ceiling.sample, level)} does not get past the bound {v:g}: nothing at this scale does"
    if f.floor is not None and frame.above == f.higher and not short(f.floor.sample):
        return f"the floor {f.floor.name} {_value(f.floor.sample, level)} is not verified short of the bound {v:g}: the trivial arm may pass"
    return ""


def _arms(part: Part, floor: Reference | None, ceiling: Reference | None, refs: list[Reference], level: float) -> tuple[str, str]:
    """(each compared arm against the floor, in words; why the arms cannot be told apart, or "")."""
    if not part.frame.arms:
        return "", ""
    own = [i for i, a in enumerate(part.arms) if not any(r.sample is not None and a.run_ids <= _runs(r) for r in refs)]
    if len(own) < len(part.arms) or any(part.arms[i].n < stats.MIN_DECIDE for i in own):
        return "", ""  # an arm that is a reference itself: the claim's own test compares with it
    names = [part.arm_names[i] if part.arm_names else show(part.arms[i].x) for i in own]
    words = ""
    if floor is not None:
        at_floor = [not _separated(part.arms[i], floor.sample, level) for i in own]
        words = ", ".join(f"{n} {'at' if f else 'off'} the floor" for n, f in zip(names, at_floor))
        if all(at_floor):
            return words, f"every compared arm is within noise of the floor {floor.name} {_value(floor.sample, level)}"
    if ceiling is not None and all(not _separated(part.arms[i], ceiling.sample, level) for i in own):
        return words, f"every compared arm is within noise of the ceiling {ceiling.name} {_value(ceiling.sample, level)}"
    return words, ""


def _runs(r: Reference) -> frozenset[str]:
    return r.sample.run_ids if r.sample is not None else frozenset()


def _separated(a: Sample, b: Sample | None, level: float) -> bool:
    if b is None:
        return False
    d = difference(a, b, level)
    return d.has_interval and (d.lo > 0 or d.hi < 0)
