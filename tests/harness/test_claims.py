"""Claim checks on the polars results frame: PASS / FAIL / INCONCLUSIVE / NO DATA from intervals over seeds
and paired tests (scipy.stats), with what was measured, and check specs validated like the rest of a suite
(one-line errors with file:line)."""

import numpy as np
import pytest
from pydantic import TypeAdapter
from scipy import stats as sps

from harness.report.claims import (
    FAIL,
    INCONCLUSIVE,
    NO_DATA,
    PASS,
    UNCHECKED,
    check_claims,
    combine,
    describe,
    evaluate,
)
from harness.report.frame import build
from harness.spec import SpecError, load_suite
from harness.spec.claim_models import Check, ClaimSpec

CHECK = TypeAdapter(Check)


def row(pe: str, seed: int, metrics: dict, **config) -> dict:
    cfg = {"model.pos_emb": pe, **{k.replace("__", "."): v for k, v in config.items()}}
    cell = " ".join(f"{k}={v}" for k, v in cfg.items())
    return {"run_id": f"{cell} {seed}", "cell": cell, "seed": seed, **cfg, **metrics}


ACC = {  # abs fits 5 digits only; rel_kq generalizes (slowly decaying); three seeds each
    "abs": [{5: 1.0, 10: 0.0, 15: 0.0}, {5: 0.98, 10: 0.02, 15: 0.0}, {5: 0.99, 10: 0.01, 15: 0.0}],
    "rel_kq": [{5: 1.0, 10: 0.96, 15: 0.7}, {5: 1.0, 10: 0.9, 15: 0.62}, {5: 1.0, 10: 0.93, 15: 0.66}],
}


@pytest.fixture
def df():
    return build([row(pe, s, {f"exact/len_{n:02d}": v for n, v in a.items()}) for pe, seeds in ACC.items() for s, a in enumerate(seeds)])


def run(check: dict, df):
    return evaluate(CHECK.validate_python(check), df)


def t_ci(x) -> tuple[float, float]:
    ci = sps.ttest_1samp(x, 0).confidence_interval(0.95)
    return ci.low, ci.high


def test_bounds_compare_the_interval_of_the_mean(df):
    lo, hi = t_ci([0.7, 0.62, 0.66])  # rel_kq at 15 digits: 0.66 [0.56, 0.76]
    rel = {"kind": "at_least", "metric": "exact/len_", "axis": "suffix", "from": 10, "where": {"model.pos_emb": "rel_kq"}}
    v = run({**rel, "value": 0.5}, df)
    assert (v.status, v.measured) == (PASS, f"min 0.66 [{lo:.2f}, {hi:.2f}] at len 15")
    assert "95% interval of the mean over seeds: t-interval" in v.method
    assert run({**rel, "value": 0.9}, df).status == FAIL  # the whole interval below
    v = run({**rel, "value": 0.7}, df)  # straddles the bound
    assert v.status == INCONCLUSIVE and "seeds would decide at this variance" in v.measured
    v = run({"kind": "at_most", "metric": "exact/len_", "axis": "suffix", "from": 6, "where": {"model.pos_emb": "abs"}, "value": 0.05}, df)
    assert v.status == PASS and v.measured.startswith("max 0.01 [") and v.measured.endswith("at len 10")
    v = run({"kind": "at_most", "metric": "exact/len_05", "where": {"model.pos_emb": "abs"}, "value": 0.5}, df)
    assert v.status == FAIL and v.measured.startswith("0.99 [")  # one point: no "max"
    loose = run({**rel, "value": 0.6, "alpha": 0.01}, df)  # a 99% interval is wider: 0.6 is inside it
    assert loose.status == INCONCLUSIVE and "99% interval" in loose.method


def test_one_seed_is_inconclusive_unless_the_check_is_exact():
    one = build([row("abs", 0, {"m": 0.9})])
    v = run({"kind": "at_least", "metric": "m", "value": 0.5}, one)
    assert v.status == INCONCLUSIVE and "1 run: no interval" in v.measured
    v = run({"kind": "at_least", "metric": "m", "value": 0.5, "exact": True}, one)
    assert (v.status, v.measured) == (PASS, "0.90 [0.90, 0.90]") and v.method.startswith("exact: each point taken as it is")


def test_by_groups_must_all_hold_and_between_names_the_point_outside(df):
    v = run({"kind": "at_least", "metric": "exact/len_05", "by": ["model.pos_emb"], "value": 0.95}, df)
    assert v.status == PASS and v.measured.startswith("min 0.99 [") and v.measured.endswith("(pos_emb=abs)")
    v = run({"kind": "between", "metric": "exact/len_", "axis": "suffix", "by": ["model.pos_emb", "seed"], "low": 0, "high": 1, "exact": True}, df)
    assert (v.status, v.measured) == (PASS, "0.00..1.00 over 18 points of 6 runs")
    v = run({"kind": "between", "metric": "exact/len_", "axis": "suffix", "by": ["model.pos_emb"], "low": 0.5, "high": 1}, df)
    assert v.status == FAIL and "at len 10 (pos_emb=abs) outside [0.5, 1]" in v.measured


def test_beats_pairs_seeds_and_tests_the_difference_against_the_margin(df):
    ab = {"a": {"where": {"model.pos_emb": "rel_kq"}}, "b": {"where": {"model.pos_emb": "abs"}}}
    d = np.array([0.96, 0.9, 0.93]) - np.array([0.0, 0.02, 0.01])
    ci = sps.ttest_rel([0.96, 0.9, 0.93], [0.0, 0.02, 0.01]).confidence_interval(0.95)
    p = sps.ttest_1samp(d, 0, alternative="greater").pvalue
    v = run({"kind": "beats", "metric": "exact/len_10", **ab}, df)
    assert (v.status, v.measured) == (PASS, f"0.93 vs 0.01: a-b +{d.mean():.2f} [+{ci.low:.2f}, +{ci.high:.2f}], p = {p:.2g} (3 seeds)")
    assert v.method == "paired by seed: 95% t-interval of the mean difference, one-sided paired t-test of difference > margin 0"
    v = run({"kind": "beats", "metric": "exact/len_10", "margin": 0.95, **ab}, df)  # the margin is inside the interval
    assert v.status == INCONCLUSIVE and "seeds would decide at this variance" in v.measured
    assert run({"kind": "beats", "metric": "exact/len_10", "margin": 1.1, **ab}, df).status == FAIL
    assert run({"kind": "beats", "metric": "exact/len_10", "higher_is_better": False, **ab}, df).status == FAIL
    v = run({"kind": "beats", "metric": "exact/len_", "axis": "suffix", **ab}, df)  # at every length; 5 digits: 1.00 vs 0.99
    assert v.status == INCONCLUSIVE and v.measured.startswith("worst: 1.00 vs 0.99 at len 5")
    v = run({"kind": "beats", "metric": "exact/len_10", "test": "permutation", **ab}, df)
    assert v.status == PASS and "sign-flip permutation" in v.method and "p = 0.12" in v.measured  # exact: 1 of 2^3 sign flips


def test_beats_without_shared_seeds_is_unpaired_and_best_of_picks_a_configuration():
    df = build([row("a", s, {"m": 0.8 + 0.01 * s}) for s in (0, 1, 2)] + [row("b", s, {"m": 0.5 + 0.01 * s}) for s in (5, 6, 7)])
    v = run({"kind": "beats", "metric": "m", "a": {"where": {"model.pos_emb": "a"}}, "b": {"where": {"model.pos_emb": "b"}}}, df)
    assert v.status == PASS and v.method.startswith("unpaired") and "Welch's t-test" in v.method and "(3 runs)" in v.measured
    grid = build([row("a", s, {"m": v}, k=k) for k, vals in ((1, (0.5, 0.52)), (2, (0.9, 0.91))) for s, v in enumerate(vals)]
                 + [row("b", s, {"m": 0.7 + 0.01 * s}) for s in (0, 1)])
    v = run({"kind": "beats", "metric": "m", "a": {"where": {"model.pos_emb": "a"}, "best_of": ["k"]}, "b": {"where": {"model.pos_emb": "b"}}}, grid)
    assert v.status == PASS and v.measured.startswith("0.91 vs 0.70")  # a at its best k (2)


def test_a_negative_margin_lets_a_trail_b_by_less_than_it():
    df = build([row("a", s, {"m": 0.500 + 0.01 * s}) for s in (0, 1, 2)] + [row("b", s, {"m": 0.505 + 0.01 * s}) for s in (0, 1, 2)])
    ab = {"a": {"where": {"model.pos_emb": "a"}}, "b": {"where": {"model.pos_emb": "b"}}, "exact": True}
    assert run({"kind": "beats", "metric": "m", "margin": -0.01, **ab}, df).status == PASS  # a trails by 0.005
    assert run({"kind": "beats", "metric": "m", "margin": -0.001, **ab}, df).status == FAIL
    from harness.report.claim_text import describe
    from harness.spec.claim_models import Beats

    assert describe(Beats(kind="beats", metric="m", margin=-0.01, **ab)).startswith("m: a > b - 0.01")
    assert describe(Beats(kind="beats", metric="m", margin=0.02, higher_is_better=False, **ab)).startswith("m: a < b - 0.02")


def test_monotone_along_the_suffix_and_a_config_axis(df):
    v = run({"kind": "monotone", "metric": "exact/len_", "axis": "suffix", "where": {"model.pos_emb": "rel_kq"}, "direction": "decreasing"}, df)
    assert (v.status, v.measured) == (PASS, "1.00 → 0.66 over len 5..15") and "no test" in v.method
    v = run({"kind": "monotone", "metric": "exact/len_", "axis": "suffix", "by": ["model.pos_emb"], "direction": "increasing"}, df)
    assert (v.status, v.measured) == (FAIL, "0.99 → 0.01 at len 5 → 10 (pos_emb=abs)")  # the largest step against the direction
    v = run({"kind": "monotone", "metric": "exact/len_", "axis": "suffix", "from": 10, "where": {"model.pos_emb": "abs"},
             "direction": "increasing", "tolerance": 0.02}, df)
    assert v.status == PASS  # 0.01 -> 0.00 from 10 to 15 digits: within the tolerance
    v = run({"kind": "monotone", "metric": "exact/len_15", "axis": "seed", "where": {"model.pos_emb": "rel_kq"}, "direction": "increasing"}, df)
    assert (v.status, v.measured) == (FAIL, "0.70 → 0.62 at seed 0 → 1")


def depth_frame():
    """Learning times of two features along depth: feature 1 becomes the faster one from depth 3."""
    t0, t1 = {1: 10.0, 2: 20.0, 3: 40.0, 4: 80.0}, {1: 12.0, 2: 21.0, 3: 30.0, 4: 35.0}
    return build([{"run_id": f"r{d}", "cell": f"d{d}", "seed": 0, "model.depth": d, "time/f0": t0[d], "time/f1": t1[d]} for d in t0])


def test_crossover_finds_where_the_order_swaps():
    df = depth_frame()
    base = {"kind": "crossover", "axis": "model.depth", "a": {"metric": "time/f0"}, "b": {"metric": "time/f1"}}
    v = run({**base, "at": 3}, df)
    assert (v.status, v.measured) == (PASS, "swaps at depth 3 (a-b -1.00 → 10.00)")
    v = run({**base, "at": 2}, df)
    assert v.status == FAIL and v.measured.endswith("expected at 2")
    v = run({**base, "to": 2}, df)
    assert (v.status, v.measured) == (FAIL, "no swap: a below b at all 2 points")


def test_no_data_all_inconclusive_and_not_checked(df):
    assert run({"kind": "at_least", "metric": "exact/len_99", "value": 0}, df).status == NO_DATA
    assert run({"kind": "at_least", "metric": "exact/len_05", "where": {"model.pos_emb": "rope"}, "value": 0}, df).status == NO_DATA
    v = run({"kind": "at_least", "metric": "exact/len_05", "value": 0, "min_runs": 7}, df)
    assert (v.status, v.measured) == (NO_DATA, "6 runs, 7 required")
    v = run({"kind": "monotone", "metric": "exact/len_05", "axis": "model.pos_emb", "where": {"model.pos_emb": "abs"}, "direction": "increasing"}, df)
    assert v.status == NO_DATA
    ok = {"kind": "at_least", "metric": "exact/len_05", "value": 0.5}
    bad = {"kind": "at_most", "metric": "exact/len_05", "value": 0.5}
    empty = {"kind": "at_least", "metric": "nope", "value": 0}
    undecided = {"kind": "at_least", "metric": "exact/len_15", "where": {"model.pos_emb": "rel_kq"}, "value": 0.7}
    assert run({"kind": "all", "checks": [ok, ok]}, df).status == PASS
    assert run({"kind": "all", "checks": [ok, undecided]}, df).status == INCONCLUSIVE
    assert run({"kind": "all", "checks": [ok, empty, undecided]}, df).status == NO_DATA
    v = run({"kind": "all", "checks": [ok, bad, empty]}, df)
    assert v.status == FAIL and v.measured.count(";") == 2
    assert combine([PASS, INCONCLUSIVE, FAIL]) == FAIL and combine([PASS, PASS]) == PASS
    claims = [ClaimSpec(id="a", text="t"), ClaimSpec(id="b", text="t", check=CHECK.validate_python(bad)),
              ClaimSpec(id="c", text="t", check=CHECK.validate_python(undecided))]
    results = check_claims(claims, df)
    assert [(r.status, r.failed, r.inconclusive) for r in results] == [(UNCHECKED, False, False), (FAIL, True, False), (INCONCLUSIVE, False, True)]
    assert describe(CHECK.validate_python(bad)) == "exact/len_05 ≤ 0.5"
    assert describe(CHECK.validate_python({**ok, "where": {"task.train_len": [5, 20], "model.name": ["lstm", "mamba"]}})) == \
        "exact/len_05 ≥ 0.5 (train_len=[5, 20], model=lstm/mamba)"


SUITE = """name: s
defaults:
  task: {{name: arithmetic}}
  model: {{name: transformer}}
  method: {{name: supervised}}
claims:
  - id: c
    text: t
    check:
{check}
"""


@pytest.mark.parametrize("check, line, message", [
    ("      kind: at_leest\n      metric: m\n      value: 1", 10, "claims[0].check.kind: unknown check kind 'at_leest'; did you mean 'at_least'?"),
    ("      metric: m\n      value: 1", 9, "claims[0].check: a check needs 'kind': one of at_least, at_most"),
    ("      kind: at_least\n      metric: m", 9, "claims[0].check.value: Field required"),
    ("      kind: beats\n      metric: m\n      a: {}\n      b: {}\n      margn: 1", 14, "claims[0].check.margn: unknown key 'margn'; did you mean 'margin'?"),
    ("      kind: all\n      checks:\n        - {kind: monotone, metric: m, axis: suffix, direction: up}", 12,
     "claims[0].check.checks[0].direction: Input should be 'increasing' or 'decreasing'"),
    ("      kind: at_least\n      value: 1", 9, "claims[0].check: 'metric' is required"),
    ("      kind: at_most\n      metric: m\n      value: 1\n      from: 3", 9, "claims[0].check: 'from' / 'to' restrict an axis: give 'axis' too"),
])
def test_check_spec_errors_name_file_line_and_key(tmp_path, check, line, message):
    path = tmp_path / "s.yaml"
    path.write_text(SUITE.format(check=check))
    with pytest.raises(SpecError) as e:
        load_suite(path)
    assert str(e.value).startswith(f"{path}:{line}: {message}"), str(e.value)
    assert "\n" not in str(e.value)


def test_suite_claims_load_typed_and_ids_are_unique(tmp_path, root):
    spec = load_suite(root / "suites" / "jepa_theory.yaml").spec
    assert all(c.check is not None for c in spec.claims)
    path = tmp_path / "s.yaml"
    path.write_text(SUITE.format(check="      {kind: at_least, metric: m, value: 1}") + "  - {id: c, text: again}\n")
    with pytest.raises(SpecError, match="duplicate claim id"):
        load_suite(path)
