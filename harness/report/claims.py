"""A suite's claims checked on its results: PASS / FAIL / INCONCLUSIVE / UNTESTABLE / NO DATA, each with
what it measured, the headroom its reference arms leave, its power, and the statistics behind it.

1. Each check (harness/report/checks, one module per kind) splits into parts (points, steps, pairs), each
   with one-sided p-values both ways.  A claim PASSes only where every part does (intersection-union: its
   p-value is the largest); it FAILs where one part does, Bonferroni over the parts (the smallest times
   their number), so that k points on a bound do not make k chances of a false FAIL.
2. Reference arms (the suite's `references`, or the claim's selection of them): a declared reference
   without data makes the claim NO DATA; a part that cannot test its claim (checks/references.py: no
   verified headroom, a bound out of the references' reach, every arm at the floor or at the ceiling) makes
   it UNTESTABLE, unless a testable part FAILs on its own (a failure with headroom is a result).
3. Seeds until decided: a claim with `until_decided` is tested at its share of alpha for the look it is
   at (alpha spent in proportion to the seeds each look adds, max_seeds in all: the looks together keep
   alpha, by the union bound), not at the full alpha at every look.
4. The family: the claims still testable are controlled together by Holm's step-down (report.family:
   holm, the default) on their two-sided p-values, each at its own alpha; a claim the family does not
   reject is INCONCLUSIVE, and says so.  `harness report --check` exits 1 on FAIL or NO DATA, else 4 on
   UNTESTABLE, else 3 on INCONCLUSIVE."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import polars as pl

from harness.report import stats
from harness.report.checks import Evaluation, Part, evaluate
from harness.report.checks.base import best, num, worst
from harness.report.checks.references import Framing, frame_part
from harness.report.claim_text import describe
from harness.report.seeds import claim_cells
from harness.spec.claim_models import AllOf, Beats, ClaimSpec, ReferenceSpec
from harness.spec.models import SuiteSpec

__all__ = ["ClaimResult", "check_claims", "describe", "evaluate_claim", "suite_claims"]

PASS, FAIL, INCONCLUSIVE, UNTESTABLE, NO_DATA, UNCHECKED = "PASS", "FAIL", "INCONCLUSIVE", "UNTESTABLE", "NO DATA", "not checked"
STATUSES = (PASS, FAIL, INCONCLUSIVE, UNTESTABLE, NO_DATA, UNCHECKED)


@dataclass(frozen=True)
class ClaimResult:
    claim: ClaimSpec
    status: str
    measured: str
    check: str  # the check in words
    method: str = ""  # the statistics, in words
    headroom: str = ""  # the reference arms at the deciding part, in words ("": the claim reads none)
    power: str = ""  # what the seeds in hand detect, and the seeds that would decide
    p_pass: float = math.nan  # one-sided p-values of the whole check (before the family's correction)
    p_fail: float = math.nan
    alpha: float = 0.05  # the level the claim is tested at (a share of it at a look of seeds-until-decided)
    family: str = ""  # how the family changed the verdict, in words ("": it did not)

    @property
    def failed(self) -> bool:
        """What `harness report --check` exits 1 on: a FAIL or a check without data."""
        return self.status in (FAIL, NO_DATA)

    @property
    def inconclusive(self) -> bool:
        return self.status == INCONCLUSIVE

    @property
    def untestable(self) -> bool:
        return self.status == UNTESTABLE

    @property
    def p_value(self) -> float:
        """Two-sided: twice the smaller one-sided p-value (nan: undecidable)."""
        p = best((self.p_pass, self.p_fail))
        return math.nan if math.isnan(p) else min(1.0, 2 * p)


def claim_alpha(check: Any) -> float:
    return min(claim_alpha(c) for c in check.checks) if isinstance(check, AllOf) else check.alpha


def look_alpha(alpha: float, initial: int, step: int, max_seeds: int, n: int) -> float:
    """The alpha of the look of seeds-until-decided at `n` seeds: looks at initial, initial + step, ...,
    max_seeds; each spends alpha times the seeds it adds over max_seeds (they sum to alpha: module docstring, 3)."""
    looks = [initial]
    while looks[-1] < max_seeds:
        looks.append(min(looks[-1] + step, max_seeds))
    at = max([i for i, look in enumerate(looks) if look <= n], default=0)
    return alpha * (looks[at] - (looks[at - 1] if at else 0)) / max(max_seeds, initial)


def spent_alpha(claim: ClaimSpec, frame: pl.DataFrame, initial: int) -> float:
    """The claim's alpha at the look its cells are at (the most seeds a cell of it has)."""
    alpha, rule = claim_alpha(claim.check), claim.until_decided
    if rule is None:
        return alpha
    cells = claim_cells(claim, frame)
    sub = frame.filter(pl.col("cell").is_in(sorted(cells))) if cells and "cell" in frame.columns else frame.clear()
    n = max(sub.group_by("cell").agg(pl.col("seed").n_unique())["seed"].to_list(), default=initial) if not sub.is_empty() else initial
    return look_alpha(alpha, initial, rule.step, rule.max_seeds, n)


# ------------------------------------------------------------------ one claim
@dataclass(frozen=True)
class _Checked:
    """A claim before the family: its parts, their framing, and the one-sided p-values of the whole."""

    evaluation: Evaluation
    parts: list[Part]
    framings: list[Framing | None]
    p_pass: float
    p_fail: float
    untestable: str = ""
    missing: str = ""


def _combine(parts: list[Part], framings: list[Framing | None]) -> _Checked:
    untestable = [i for i, f in enumerate(framings) if f is not None and f.untestable]
    testable = [i for i in range(len(parts)) if i not in untestable]
    k = len(parts)
    p_fail = min(1.0, k * best(parts[i].p_fail for i in testable)) if testable else math.nan
    p_pass = worst(p.p_pass for p in parts) if not untestable else math.nan
    reason = framings[untestable[0]].untestable if untestable else ""
    return _Checked(Evaluation(), parts, framings, p_pass, p_fail, reason)


def evaluate_claim(claim: ClaimSpec, df: pl.DataFrame, references: Mapping[str, ReferenceSpec], alpha: float) -> _Checked:
    ev = evaluate(claim.check, df, alpha)
    if ev.no_data:
        return _Checked(ev, [], [], math.nan, math.nan, missing=ev.no_data)
    names = list(references) if claim.references is None else claim.references
    refs = {n: references[n] for n in names if n in references}
    higher = claim.check.higher_is_better if isinstance(claim.check, Beats) else None
    parts = ev.all_parts()
    framings = [frame_part(df, p, refs, alpha, higher) for p in parts] if refs else [None] * len(parts)
    missing = next((f.missing for f in framings if f is not None and f.missing), "")
    if missing:
        return _Checked(ev, parts, framings, math.nan, math.nan, missing=missing)
    return replace(_combine(parts, framings), evaluation=ev)


def _deciding(parts: list[Part], status: str) -> int:
    """The part the verdict shows: the strongest FAIL, else the weakest link of the PASS (an undecided one first);
    among equal p-values (exact parts: 0 or 1 each) the one nearest the bound, so "max x" shows the largest x."""
    def gap(i: int) -> float:
        return parts[i].gap if not math.isnan(parts[i].gap) else 0.0

    if status == FAIL:
        return min(range(len(parts)), key=lambda i: (math.isnan(parts[i].p_fail), parts[i].p_fail, gap(i)))
    return max(range(len(parts)), key=lambda i: (math.isnan(parts[i].p_pass), parts[i].p_pass, -gap(i)))


def _measured(c: _Checked, status: str) -> tuple[str, int]:
    """What was measured (one text per `all` sub-check) and the index of the part shown first."""
    subs = c.evaluation.subs or [c.evaluation]
    texts, first, offset = [], None, 0
    for sub in subs:
        parts = c.parts[offset:offset + len(sub.all_parts())]
        if parts:
            i = _deciding(parts, status)
            texts.append(sub.passed if status == PASS and sub.passed else parts[i].text)
            first = offset + i if first is None else first
        offset += len(parts)
    if status == FAIL:  # the part that fails, wherever it is
        first = _deciding(c.parts, FAIL)
    return "; ".join(texts), first or 0


def _power(part: Part, status: str, alpha: float) -> str:
    """What the seeds in hand detect, and for an undecided claim the seeds that would decide it."""
    if part.exact:
        return ""
    if part.n < stats.MIN_DECIDE:
        return f"{part.n} seed{'s' if part.n != 1 else ''}: a decision needs {stats.MIN_DECIDE} or more"
    out = f"detects a true distance ≥ {num(part.detectable)} at 80% power" if not math.isnan(part.detectable) else ""
    if status != INCONCLUSIVE or math.isnan(part.gap):
        return out
    toward = "toward PASS" if part.gap > 0 else "toward FAIL"
    if part.seeds_needed:
        more = f"~{part.seeds_needed} seeds would decide at this spread, {toward} (80% power)"
    elif part.gap == 0:
        more = "the estimate sits on the bound: no number of seeds decides"
    elif part.noise_var > 0:
        more = (f"more seeds cannot decide: the test set's own noise (±{num(1.96 * math.sqrt(part.noise_var))}) exceeds the "
                f"distance {num(abs(part.gap))}; a larger test set would")
    else:
        more = "more seeds would not decide"
    return f"{out}; {more}" if out else more


# ------------------------------------------------------------------ the family
def _holm(decided: list[tuple[int, float, float]]) -> dict[int, tuple[bool, float]]:
    """Holm's step-down over (index, two-sided p, alpha): index -> (rejected, adjusted p)."""
    order = sorted(decided, key=lambda d: d[1] / d[2])
    m, out, stop, adj = len(order), {}, False, 0.0
    for j, (i, p, a) in enumerate(order):
        adj = max(adj, min(1.0, (m - j) * p))
        stop = stop or p >= a / (m - j)
        out[i] = (not stop, adj)
    return out


def check_claims(claims: Iterable[ClaimSpec], df: pl.DataFrame, references: Mapping[str, ReferenceSpec] | None = None,
                 family: str = "holm", initial_seeds: int = 1) -> list[ClaimResult]:
    """Every claim's verdict (module docstring).  `initial_seeds`: the suite's seeds per cell before any
    seeds-until-decided look."""
    claims, references = list(claims), references or {}
    checked: list[tuple[ClaimSpec, _Checked | None, float]] = []
    for c in claims:
        if c.check is None:
            checked.append((c, None, math.nan))
            continue
        alpha = spent_alpha(c, df, initial_seeds) if not df.is_empty() else claim_alpha(c.check)
        checked.append((c, evaluate_claim(c, df, references, alpha), alpha))
    decided = []
    for i, (_c, ch, alpha) in enumerate(checked):
        if ch is not None and not ch.missing and not math.isnan(best((ch.p_pass, ch.p_fail))):
            decided.append((i, min(1.0, 2 * best((ch.p_pass, ch.p_fail))), alpha))
    family_of = _holm(decided) if family == "holm" else {i: (p < a, p) for i, p, a in decided}
    return [_result(c, ch, alpha, family_of.get(i), len(decided), family) for i, (c, ch, alpha) in enumerate(checked)]


def suite_claims(spec: SuiteSpec, frame: pl.DataFrame) -> list[ClaimResult]:
    """The claims of a suite on its results frame, with its references and family control."""
    return check_claims(spec.claims, frame, spec.references, spec.report.family, len(spec.seeds))


def _result(claim: ClaimSpec, c: _Checked | None, alpha: float, fam: tuple[bool, float] | None, m: int,
            family: str) -> ClaimResult:
    if c is None:
        return ClaimResult(claim, UNCHECKED, "", "")
    check = describe(claim.check)
    if c.missing:
        return ClaimResult(claim, NO_DATA, c.missing, check, c.evaluation.method, alpha=alpha)
    p_two = min(1.0, 2 * best((c.p_pass, c.p_fail))) if not math.isnan(best((c.p_pass, c.p_fail))) else math.nan
    alone = not math.isnan(p_two) and p_two < alpha
    rejected = fam is not None and fam[0]
    if rejected:
        status = PASS if not math.isnan(c.p_pass) and (math.isnan(c.p_fail) or c.p_pass <= c.p_fail) else FAIL
    else:
        status = UNTESTABLE if c.untestable else INCONCLUSIVE
    measured, i = _measured(c, status)
    framing = c.framings[i] if c.framings else None
    if status == UNTESTABLE:  # the reason of the part shown (the headroom column's), else the claim's
        measured += f"; UNTESTABLE: {framing.untestable if framing is not None and framing.untestable else c.untestable}"
    note = ""
    if alone and not rejected and status == INCONCLUSIVE and fam is not None:
        note = (f"decided alone (p = {p_two:.2g} < {alpha:g}), not after Holm over {m} claims (adjusted p = {fam[1]:.2g})")
        measured += f"; {note}"
    headroom = framing.text(1 - alpha) if framing is not None else ""
    if framing is not None and framing.untestable and status == FAIL:
        headroom += f" (another part is untestable: {framing.untestable})"
    method = c.evaluation.method + (f"; family: Holm over {m} claims" if family == "holm" and m > 1 else "")
    return ClaimResult(claim, status, measured, check, method, headroom, _power(c.parts[i], status, alpha) if c.parts else "",
                       c.p_pass, c.p_fail, alpha, note)
