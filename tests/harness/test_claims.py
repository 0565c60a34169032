"""Claim checks on a results DataFrame: PASS / FAIL / NO DATA with the measured value, and check specs
validated like the rest of a suite (one-line errors with file:line)."""

import pytest
from pydantic import TypeAdapter

from harness.report.claims import FAIL, NO_DATA, PASS, UNCHECKED, check_claims, describe, evaluate
from harness.report.frame import results_frame
from harness.spec import SpecError, load_suite
from harness.spec.claim_models import Check, ClaimSpec
from harness.track import RunRecord

CHECK = TypeAdapter(Check)


def rec(pe: str, seed: int, metrics: dict[str, float], **params) -> RunRecord:
    p = {"model.pos_emb": pe, "seed": str(seed), **{k.replace("__", "."): str(v) for k, v in params.items()}}
    return RunRecord(f"m{pe}{seed}{sorted(params.items())}", f"{pe}{seed}{sorted(params.items())}", "FINISHED", p, {}, metrics)


@pytest.fixture
def df():
    """abs fits 5 digits only; rel_kq generalizes (slowly decaying); two seeds each."""
    acc = {
        ("abs", 0): {5: 1.0, 10: 0.0, 15: 0.0}, ("abs", 1): {5: 0.8, 10: 0.02, 15: 0.0},
        ("rel_kq", 0): {5: 1.0, 10: 0.96, 15: 0.7}, ("rel_kq", 1): {5: 1.0, 10: 0.9, 15: 0.62},
    }
    return results_frame([rec(pe, s, {f"exact/len_{n:02d}": v for n, v in a.items()}) for (pe, s), a in acc.items()])


def run(check: dict, df):
    return evaluate(CHECK.validate_python(check), df)


def test_at_least_and_at_most_pass_and_fail_with_the_worst_point(df):
    v = run({"kind": "at_least", "metric": "exact/len_", "axis": "suffix", "from": 10, "where": {"model.pos_emb": "rel_kq"}, "value": 0.6}, df)
    assert (v.status, v.measured) == (PASS, "min 0.66 at len 15")
    v = run({"kind": "at_least", "metric": "exact/len_", "axis": "suffix", "from": 10, "where": {"model.pos_emb": "rel_kq"}, "value": 0.9}, df)
    assert (v.status, v.measured) == (FAIL, "min 0.66 at len 15")
    v = run({"kind": "at_most", "metric": "exact/len_", "axis": "suffix", "from": 6, "where": {"model.pos_emb": "abs"}, "value": 0.05}, df)
    assert (v.status, v.measured) == (PASS, "max 0.01 at len 10")
    v = run({"kind": "at_most", "metric": "exact/len_05", "where": {"model.pos_emb": "abs"}, "value": 0.5}, df)
    assert (v.status, v.measured) == (FAIL, "0.90")  # one point: the mean over the two seeds


def test_by_groups_must_all_hold_and_between_names_the_point_outside(df):
    v = run({"kind": "at_least", "metric": "exact/len_05", "by": ["model.pos_emb"], "value": 0.95}, df)
    assert (v.status, v.measured) == (FAIL, "min 0.90 (pos_emb=abs)")
    v = run({"kind": "between", "metric": "exact/len_", "axis": "suffix", "by": ["model.pos_emb", "seed"], "low": 0, "high": 1}, df)
    assert (v.status, v.measured) == (PASS, "0.00..1.00 over 12 points of 4 runs")
    v = run({"kind": "between", "metric": "exact/len_", "axis": "suffix", "by": ["model.pos_emb"], "low": 0.5, "high": 1}, df)
    assert (v.status, v.measured) == (FAIL, "0.01 at len 10 (pos_emb=abs) outside [0.5, 1]")


def test_beats_with_margin_best_of_and_lower_is_better(df):
    ab = {"a": {"where": {"model.pos_emb": "rel_kq"}}, "b": {"where": {"model.pos_emb": "abs"}}}
    v = run({"kind": "beats", "metric": "exact/len_10", **ab}, df)
    assert (v.status, v.measured) == (PASS, "0.93 vs 0.01")
    assert run({"kind": "beats", "metric": "exact/len_10", "margin": 0.95, **ab}, df).status == FAIL
    assert run({"kind": "beats", "metric": "exact/len_10", "higher_is_better": False, **ab}, df).status == FAIL
    v = run({"kind": "beats", "metric": "exact/len_", "axis": "suffix", **ab}, df)  # at every length; closest at 5 digits
    assert (v.status, v.measured) == (PASS, "worst: 1.00 vs 0.90 at len 5")
    assert run({"kind": "beats", "metric": "exact/len_", "axis": "suffix", "margin": 0.2, **ab}, df).status == FAIL
    # a negative margin: a may trail b by less than |margin| (abs 0.01 vs rel_kq 0.93 at 10 digits: 0.92 behind)
    ba = {"a": ab["b"], "b": ab["a"]}
    assert run({"kind": "beats", "metric": "exact/len_10", "margin": -0.95, **ba}, df).status == PASS
    assert run({"kind": "beats", "metric": "exact/len_10", "margin": -0.9, **ba}, df).status == FAIL
    from harness.report.claims import describe
    from harness.spec.claim_models import Beats

    assert describe(Beats(kind="beats", metric="m", margin=-0.01, **ba)).startswith("m: a > b - 0.01")
    assert describe(Beats(kind="beats", metric="m", margin=0.02, higher_is_better=False, **ba)).startswith("m: a < b - 0.02")
    # best_of: a side's best group (here abs's best seed, 1.00, against rel_kq's mean, 1.00: not above)
    v = run({"kind": "beats", "metric": "exact/len_05", "a": {"where": {"model.pos_emb": "abs"}, "best_of": ["seed"]},
             "b": {"where": {"model.pos_emb": "rel_kq"}}}, df)
    assert (v.status, v.measured) == (FAIL, "1.00 vs 1.00")


def test_monotone_along_the_suffix_and_a_config_axis(df):
    v = run({"kind": "monotone", "metric": "exact/len_", "axis": "suffix", "where": {"model.pos_emb": "rel_kq"}, "direction": "decreasing"}, df)
    assert (v.status, v.measured) == (PASS, "1.00 → 0.66 over len 5..15")
    v = run({"kind": "monotone", "metric": "exact/len_", "axis": "suffix", "by": ["model.pos_emb"], "direction": "increasing"}, df)
    assert (v.status, v.measured) == (FAIL, "0.90 → 0.01 at len 5 → 10 (pos_emb=abs)")  # the largest step against the direction
    # abs: 0.01 -> 0.00 from 10 to 15 digits is a step of -0.01: within a tolerance of 0.02
    v = run({"kind": "monotone", "metric": "exact/len_", "axis": "suffix", "from": 10, "where": {"model.pos_emb": "abs"},
             "direction": "increasing", "tolerance": 0.02}, df)
    assert v.status == PASS
    v = run({"kind": "monotone", "metric": "exact/len_15", "axis": "seed", "where": {"model.pos_emb": "rel_kq"}, "direction": "increasing"}, df)
    assert (v.status, v.measured) == (FAIL, "0.70 → 0.62 at seed 0 → 1")


def depth_frame():
    """Learning times of two features along depth: feature 1 becomes the faster one from depth 3."""
    t0, t1 = {1: 10.0, 2: 20.0, 3: 40.0, 4: 80.0}, {1: 12.0, 2: 21.0, 3: 30.0, 4: 35.0}
    return results_frame([RunRecord(f"m{d}", f"r{d}", "FINISHED", {"model.depth": str(d), "seed": "0"}, {},
                                    {"time/f0": t0[d], "time/f1": t1[d]}) for d in t0])


def test_crossover_finds_where_the_order_swaps():
    df = depth_frame()
    base = {"kind": "crossover", "axis": "model.depth", "a": {"metric": "time/f0"}, "b": {"metric": "time/f1"}}
    v = run({**base, "at": 3}, df)
    assert (v.status, v.measured) == (PASS, "swaps at depth 3 (a-b -1.00 → 10.00)")
    v = run({**base, "at": 2}, df)
    assert v.status == FAIL and v.measured.endswith("expected at 2")
    v = run({**base, "to": 2}, df)
    assert (v.status, v.measured) == (FAIL, "no swap: a below b at all 2 points")


def test_no_data_all_and_not_checked(df):
    assert run({"kind": "at_least", "metric": "exact/len_99", "value": 0}, df).status == NO_DATA
    assert run({"kind": "at_least", "metric": "exact/len_05", "where": {"model.pos_emb": "rope"}, "value": 0}, df).status == NO_DATA
    v = run({"kind": "at_least", "metric": "exact/len_05", "value": 0, "min_runs": 5}, df)
    assert (v.status, v.measured) == (NO_DATA, "4 runs, 5 required")
    v = run({"kind": "monotone", "metric": "exact/len_05", "axis": "model.pos_emb", "where": {"model.pos_emb": "abs"}, "direction": "increasing"}, df)
    assert v.status == NO_DATA
    ok = {"kind": "at_least", "metric": "exact/len_05", "value": 0.5}
    bad = {"kind": "at_most", "metric": "exact/len_05", "value": 0.5}
    empty = {"kind": "at_least", "metric": "nope", "value": 0}
    assert run({"kind": "all", "checks": [ok, ok]}, df).status == PASS
    assert run({"kind": "all", "checks": [ok, empty]}, df).status == NO_DATA
    v = run({"kind": "all", "checks": [ok, bad, empty]}, df)
    assert v.status == FAIL and v.measured.count(";") == 2
    claims = [ClaimSpec(id="a", text="t"), ClaimSpec(id="b", text="t", check=CHECK.validate_python(bad))]
    results = check_claims(claims, df)
    assert [(r.status, r.failed) for r in results] == [(UNCHECKED, False), (FAIL, True)]
    assert describe(CHECK.validate_python(bad)) == "exact/len_05 ≤ 0.5"


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
