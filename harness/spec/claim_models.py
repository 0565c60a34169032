"""Typed `claims:` of a suite: a paper's claim, its source and paper value, and a check on the results.

A check selects runs with `where` (config paths or `ablation`, like report tables; a list axis value is
written as a list), and tests the metric over the runs of each point (the seeds of one configuration):

- `at_least` / `at_most` / `between`: the 1 - `alpha` interval of each point's mean against fixed bounds
  (PASS: the whole interval on the right side; FAIL: the whole interval on the wrong side; else INCONCLUSIVE);
- `beats`: selection `a` above selection `b` by more than `margin` (a negative margin lets `a`
  trail `b` by less than |margin|) at every point, paired by seed (same seed
  = same data stream): the mean difference, its interval and a one-sided p-value (`test` decides);
- `monotone`: along `axis`, no step against the direction beyond `tolerance`, and the whole rise (last
  point - first) above `min_rise`, each tested (a flat line is never a PASS);
- `crossover`: `a` - `b` changes sign along `axis` (optionally first at `at`): one point significantly
  on each side;
- `all`: every check in `checks` holds.

How a verdict is reached from these (intervals, p-values, reference arms, the family of claims) is
harness/report/claims.py.

A point of one run has no interval: INCONCLUSIVE, unless the check is `exact`: each point's value is
taken as it is, for a metric that does not depend on the seed (e.g. exact covariances: one run decides)
or a claim about each run itself (`by: [seed]`, e.g. every run's accuracy lies in [0, 1]).

Points: one per group of `by` (config paths) and, with `axis`, per axis value: `axis: suffix` reads
the axis from the metric-name suffix (`metric` is then a prefix such as `exact/len_`), any other
`axis` is a config path.  `from` / `to` restrict a numeric axis (inclusive).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import AfterValidator, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from harness.registry import did_you_mean
from harness.spec.base import Scalar, Strict, Where

SUFFIX = "suffix"  # `axis: suffix`: the axis is the rest of the metric name after the `metric` prefix


class Side(Strict):
    """One side of a comparison: runs matching `where` (on top of the check's own `where`), its own
    metric if given, and with `best_of` the configuration over those config paths (e.g. each method at its
    best mask size) whose mean of `select_on` is best: a metric of a validation split, never the one reported."""

    where: Where = Field(default_factory=dict)
    metric: Optional[str] = None
    best_of: list[str] = Field(default_factory=list)
    select_on: Optional[str] = Field(None, description="the validation metric `best_of` picks on (higher is better)")

    @model_validator(mode="after")
    def _selection(self) -> Side:
        if self.best_of and self.select_on is None:
            raise ValueError("'best_of' picks a configuration: name the validation metric it picks on in 'select_on' "
                             "(picking on the reported metric selects on the numbers being reported)")
        if self.select_on is not None and not self.best_of:
            raise ValueError("'select_on' is what 'best_of' picks on: give 'best_of' too")
        return self


class CheckBase(Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    metric: Optional[str] = Field(None, description="metric name, or a prefix with `axis: suffix`")
    where: Where = Field(default_factory=dict)
    by: list[str] = Field(default_factory=list, description="config paths: the check must hold in every group")
    axis: Optional[str] = Field(None, description="'suffix' (the metric-name suffix) or a config path")
    from_: Optional[float] = Field(None, alias="from", description="smallest axis value checked")
    to: Optional[float] = Field(None, description="largest axis value checked")
    min_runs: int = Field(1, ge=1, description="fewer matching runs (with the metric) is NO DATA")
    alpha: float = Field(0.05, gt=0, lt=0.5, description="intervals are at 1 - alpha (two-sided); p-values are tested against alpha")
    exact: bool = Field(False, description="take each point as it is (no interval): a seed-independent metric, or a claim about each run")

    @model_validator(mode="after")
    def _axis_range(self) -> CheckBase:
        if (self.from_ is not None or self.to is not None) and self.axis is None:
            raise ValueError("'from' / 'to' restrict an axis: give 'axis' too")
        if self.from_ is not None and self.to is not None and self.from_ > self.to:
            raise ValueError(f"'from' ({self.from_}) is above 'to' ({self.to})")
        return self


class OneSelection(CheckBase):
    @model_validator(mode="after")
    def _has_metric(self) -> OneSelection:
        if self.metric is None:
            raise ValueError("'metric' is required")
        return self


class AtLeast(OneSelection):
    kind: Literal["at_least"]
    value: float


class AtMost(OneSelection):
    kind: Literal["at_most"]
    value: float


class Between(OneSelection):
    kind: Literal["between"]
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Between:
        if self.low > self.high:
            raise ValueError(f"'low' ({self.low}) is above 'high' ({self.high})")
        return self


class Monotone(OneSelection):
    kind: Literal["monotone"]
    axis: str
    direction: Literal["increasing", "decreasing"]
    tolerance: float = Field(0.0, ge=0, description="allowed step against the direction")
    min_rise: float = Field(0.0, ge=0, description="the change from the first point to the last (in the direction) must exceed it")


class TwoSelections(CheckBase):
    a: Side
    b: Side

    @model_validator(mode="after")
    def _metrics(self) -> TwoSelections:
        for name, side in (("a", self.a), ("b", self.b)):
            if side.metric is None and self.metric is None:
                raise ValueError(f"no metric for side '{name}': give 'metric' or '{name}.metric'")
        return self


class Beats(TwoSelections):
    kind: Literal["beats"]
    margin: float = Field(0.0, description="the effect needed: a - b (better is positive) above it; negative: a may trail b by less")
    higher_is_better: bool = True
    test: Literal["t", "wilcoxon", "permutation"] = Field("t", description="the one-sided test of a - b > margin (paired by seed)")


class Crossover(TwoSelections):
    kind: Literal["crossover"]
    axis: str
    at: Optional[Scalar] = Field(None, description="the axis value where the order must first swap")


class AllOf(Strict):
    kind: Literal["all"]
    checks: list[Check] = Field(min_length=1)

    @field_validator("checks", mode="wrap")
    @classmethod
    def _plain_locs(cls, value: Any, handler: Any) -> Any:
        return _validate_checks(value, handler, nested=True)


Check = Annotated[Union[AtLeast, AtMost, Between, Beats, Monotone, Crossover, AllOf], Field(discriminator="kind")]
CHECK_KINDS: dict[str, type[Strict]] = {
    c.model_fields["kind"].annotation.__args__[0]: c for c in (AtLeast, AtMost, Between, Beats, Monotone, Crossover, AllOf)
}
AllOf.model_rebuild()


def _validate_checks(value: Any, handler: Any, nested: bool) -> Any:
    """pydantic puts a discriminated union's tag into error locations (`check.at_least.value`); the
    suite file has no such key, so drop it, and name the allowed keys of the right kind."""
    try:
        return handler(value)
    except ValidationError as err:
        raise ValidationError.from_exception_data(err.title, [_plain(e, value, nested) for e in err.errors()]) from None


def _plain(e: Any, value: Any, nested: bool) -> dict[str, Any]:
    loc = list(e["loc"])
    if nested and len(loc) >= 2 and isinstance(loc[0], int) and loc[1] in CHECK_KINDS:
        del loc[1]  # checks[i].<tag>...
    elif not nested and loc and loc[0] in CHECK_KINDS:
        del loc[0]  # check.<tag>...
    out: dict[str, Any] = {"type": e["type"], "loc": tuple(loc), "input": e["input"]}
    if e["type"] == "extra_forbidden":
        kind = loc[-2] if len(loc) >= 2 and loc[-2] in CHECK_KINDS else e["loc"][-2]
        model = CHECK_KINDS.get(str(kind))
        known = [f.alias or n for n, f in model.model_fields.items()] if model else []
        hint = did_you_mean(str(loc[-1]), known)
        msg = f"unknown key '{loc[-1]}'{hint}" + (f" (allowed: {', '.join(known)})" if known and not hint else "")
        out.update(type=PydanticCustomError("unknown_key", msg), input=value)
    elif e["type"] in ("union_tag_invalid", "union_tag_not_found"):
        kinds = ", ".join(CHECK_KINDS)
        got = e.get("ctx", {}).get("tag")
        msg = f"unknown check kind '{got}'{did_you_mean(str(got), list(CHECK_KINDS))} (kinds: {kinds})" if got else f"a check needs 'kind': one of {kinds}"
        out.update(type=PydanticCustomError("check_kind", msg), input=value, loc=tuple(loc) + (("kind",) if got else ()))
    elif e["type"] in ("unknown_key", "check_kind"):  # already rewritten inside a nested `checks` list
        out["type"] = PydanticCustomError(e["type"], e["msg"])
    elif "ctx" in e:
        out["ctx"] = e["ctx"]
    return out


def _unique_ids(claims: list[ClaimSpec]) -> list[ClaimSpec]:
    seen = [c.id for c in claims]
    dup = sorted({i for i in seen if seen.count(i) > 1})
    if dup:
        raise ValueError(f"duplicate claim id(s): {', '.join(dup)}")
    return claims


class UntilDecided(Strict):
    """Seeds until decided: while the claim is INCONCLUSIVE, `harness run` adds `step` seeds (the next unused
    seed numbers) to the runs its check selects, up to `max_seeds` seeds per configuration."""

    max_seeds: int = Field(ge=2, le=100)
    step: int = Field(1, ge=1)


class ClaimSpec(Strict):
    """A claim of the paper.  Without `check` it is reported as not checked.  `references`: the suite's
    reference arms its verdict is read against (null: all of them; []: none, for a claim a floor and a
    ceiling cannot frame, e.g. an exact computation)."""

    id: str = Field(pattern=r"^[A-Za-z0-9_-]+$", max_length=100)
    text: str
    source: str = ""
    paper_value: Optional[Union[float, str]] = None
    check: Optional[Check] = None
    until_decided: Optional[UntilDecided] = None
    references: Optional[list[str]] = Field(None, description="names under the suite's `references` (null: all)")

    @field_validator("check", mode="wrap")
    @classmethod
    def _plain_locs(cls, value: Any, handler: Any) -> Any:
        return _validate_checks(value, handler, nested=False)


Claims = Annotated[list[ClaimSpec], AfterValidator(_unique_ids)]


class ReferenceSpec(Strict):
    """A reference arm: runs of the suite (selected by `where`, like a claim's) that frame every comparison of
    a metric they log.  `floor`: what needs no learning (an untrained encoder, raw input + the same probe, a
    constant predictor); `ceiling`: what the task allows (the same architecture trained with labels, an
    expert, an oracle feature).  At a claim's or a table's point the reference's runs are those matching
    `where` and, for each config path in `match`, the point's value of it (e.g. `task.name`: the floor of
    the same dataset); the other paths of the point describe the arms, not the point."""

    role: Literal["floor", "ceiling"]
    where: Where = Field(min_length=1)
    match: list[str] = Field(default_factory=list, description="config paths a point fixes and the reference follows")
    text: str = Field("", description="what the reference is, in words (shown in the report)")


def _reference_names(v: dict[str, ReferenceSpec]) -> dict[str, ReferenceSpec]:
    bad = [k for k in v if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", str(k))]
    if bad:
        raise ValueError(f"a reference name is 1-64 letters, digits, '_' and '-', got {bad[0]!r}")
    return v


References = Annotated[dict[str, ReferenceSpec], AfterValidator(_reference_names)]
