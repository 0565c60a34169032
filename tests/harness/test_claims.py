"""Claim verdicts (harness.report.claims) on polars results frames: each rule against a hand computation
(scipy.stats) or a simulated error rate, the reference arms and UNTESTABLE, the family, and check specs
validated like the rest of a suite (one-line errors with file:line)."""

import math

import numpy as np
import pytest
from pydantic import TypeAdapter
from scipy import stats as sps

from harness.report import stats
from harness.report.claims import (
    FAIL,
    INCONCLUSIVE,
    NO_DATA,
    PASS,
    UNCHECKED,
    UNTESTABLE,
    check_claims,
    describe,
    look_alpha,
)
from harness.report.frame import build
from harness.spec import SpecError, load_suite
from harness.spec.claim_models import Check, ClaimSpec, ReferenceSpec

CHECK = TypeAdapter(Check)


def row(pe: str, seed: int, metrics: dict, **config) -> dict:
    cfg = {"model.pos_emb": pe, **{k.replace("__", "."): v for k, v in config.items()}}
    cell = " ".join(f"{k}={v}" for k, v in cfg.items())
    return {"run_id": f"{cell} {seed}", "cell": cell, "seed": seed, **cfg, **metrics}


ACC = {  # abs fits 5 digits only; rel_kq generalizes (slowly decaying); three seeds each; floor and oracle references
    "abs": [{5: 1.0, 10: 0.0, 15: 0.0}, {5: 0.98, 10: 0.02, 15: 0.0}, {5: 0.99, 10: 0.01, 15: 0.0}],
    "rel_kq": [{5: 1.0, 10: 0.96, 15: 0.7}, {5: 1.0, 10: 0.9, 15: 0.62}, {5: 1.0, 10: 0.93, 15: 0.66}],
    "constant": [{5: 0.0, 10: 0.0, 15: 0.0}] * 3,
    "oracle": [{5: 1.0, 10: 1.0, 15: 1.0}] * 3,
}
REFS = {"constant": ReferenceSpec(role="floor", where={"model.pos_emb": "constant"}),
        "oracle": ReferenceSpec(role="ceiling", where={"model.pos_emb": "oracle"})}


def frame(items: int | None = None, acc=ACC):
    extra = {"items/exact": items} if items else {}
    return build([row(pe, s, {**{f"exact/len_{n:02d}": v for n, v in a.items()}, **extra}) for pe, seeds in acc.items()
                  for s, a in enumerate(seeds)])


@pytest.fixture
def df():
    return frame()


def verdict(check: dict, df, refs=None, **claim):
    return check_claims([ClaimSpec(id="c", text="t", check=CHECK.validate_python(check), **claim)], df, refs)[0]


def t_ci(x) -> tuple[float, float]:
    ci = sps.ttest_1samp(x, 0).confidence_interval(0.95)
    return ci.low, ci.high


REL = {"kind": "at_least", "metric": "exact/len_", "axis": "suffix", "from": 10, "where": {"model.pos_emb": "rel_kq"}}


def test_bounds_compare_the_interval_of_the_mean(df):
    lo, hi = t_ci([0.7, 0.62, 0.66])  # rel_kq at 15 digits: 0.66 [0.56, 0.76]
    v = verdict({**REL, "value": 0.5}, df)
    assert (v.status, v.measured) == (PASS, f"min 0.66 [{lo:.2f}, {hi:.2f}] at len 15")
    assert v.method == "95% interval of the mean: t-interval over seeds"
    p = sps.ttest_1samp([0.7, 0.62, 0.66], 0.5, alternative="greater").pvalue
    assert v.p_pass == pytest.approx(max(p, sps.ttest_1samp([0.96, 0.9, 0.93], 0.5, alternative="greater").pvalue))
    assert verdict({**REL, "value": 0.9}, df).status == FAIL  # the whole interval below
    v = verdict({**REL, "value": 0.7}, df)  # straddles the bound
    assert v.status == INCONCLUSIVE and "seeds would decide at this spread, toward FAIL (80% power)" in v.power
    assert "detects a true distance ≥" in v.power
    loose = verdict({**REL, "value": 0.55, "alpha": 0.01}, df)  # a 99% interval is wider: 0.55 is inside it
    assert loose.status == INCONCLUSIVE and "99% interval" in loose.method and verdict({**REL, "value": 0.55}, df).status == PASS


def test_identical_seeds_decide_only_with_test_items():
    abs_tail = {"kind": "at_most", "metric": "exact/len_15", "where": {"model.pos_emb": "abs"}, "value": 0.05}  # 0.00 x 3
    v = verdict(abs_tail, frame())
    assert v.status == INCONCLUSIVE and v.measured.startswith("0.00")  # no spread, no items: the noise is unknown
    v = verdict(abs_tail, frame(items=200))  # 0/200 rows three times: Wilson's interval of 0 of 200
    hi = sps.binomtest(0, 200).proportion_ci(0.95, method="wilson").high
    assert v.status == PASS and v.measured == f"0.00 [0.00, {hi:.2f}]"
    assert "Wilson interval of the test items" in v.method
    tight = verdict({**abs_tail, "value": 0.015}, frame(items=200))  # inside the items' interval: the test set is too small
    assert tight.status == INCONCLUSIVE and "a larger test set would" in tight.power


def test_two_seeds_never_decide_one_run_only_when_exact():
    two = build([row("a", s, {"m": 0.9 + 0.01 * s}) for s in (0, 1)])
    v = verdict({"kind": "at_least", "metric": "m", "value": 0.1}, two)
    assert v.status == INCONCLUSIVE and v.power == "2 seeds: a decision needs 3 or more"
    one = build([row("a", 0, {"m": 0.9})])
    assert verdict({"kind": "at_least", "metric": "m", "value": 0.5}, one).status == INCONCLUSIVE
    v = verdict({"kind": "at_least", "metric": "m", "value": 0.5, "exact": True}, one)
    assert (v.status, v.measured) == (PASS, "0.90") and v.method.startswith("exact: each point taken as it is")


def test_an_exact_bound_over_points_shows_its_extreme():
    """jepa_theory: "max 0.55 at f0 (depth=1)" while the largest error was 0.99 (depth=2): every exact part passes
    with the same p, so the one nearest the bound is shown."""
    runs = build([row("a", 0, {"err": e}, depth=d) for d, e in ((1, 0.55), (2, 0.99), (3, 0.2))])
    v = verdict({"kind": "at_most", "metric": "err", "value": 5.0, "by": ["depth"], "exact": True}, runs)
    assert v.status == PASS and v.measured.startswith("max 0.99") and "depth=2" in v.measured, v.measured
    v = verdict({"kind": "at_least", "metric": "err", "value": 0.1, "by": ["depth"], "exact": True}, runs)
    assert v.status == PASS and v.measured.startswith("min 0.2") and "depth=3" in v.measured, v.measured


def test_by_groups_must_all_hold_and_fail_is_bonferroni_over_the_points(df):
    v = verdict({"kind": "at_least", "metric": "exact/len_05", "by": ["model.pos_emb"], "where": {"model.pos_emb": ["abs", "rel_kq"]},
                 "value": 0.95}, frame(items=200))
    assert v.status == PASS and v.measured.startswith("min 0.99 [") and v.measured.endswith("(pos_emb=abs)")
    v = verdict({"kind": "between", "metric": "exact/len_", "axis": "suffix", "by": ["model.pos_emb", "seed"], "low": 0,
                 "high": 1, "exact": True}, df)
    assert (v.status, v.measured) == (PASS, "0.00..1.00 over 36 points of 12 runs")  # inclusive bounds: 0 and 1 hold
    x = [0.45, 0.5, 0.48]  # one point: FAIL at p; two identical points: FAIL only at twice the smallest p
    p = sps.ttest_1samp(x, 0.6, alternative="less").pvalue
    one = build([row("a", s, {"m_1": x[s]}) for s in range(3)])
    two = build([row("a", s, {"m_1": x[s], "m_2": x[s]}) for s in range(3)])
    check = {"kind": "at_least", "metric": "m_", "axis": "suffix", "value": 0.6}
    assert verdict(check, one).p_fail == pytest.approx(p) and verdict(check, two).p_fail == pytest.approx(2 * p)


def test_false_fail_over_many_points_stays_under_alpha_by_simulation():
    """Five points sitting exactly on the bound: a FAIL needs one of them below it.  Without the Bonferroni
    factor the rate is ~5 x 2.5%; with it at most 2.5%."""
    rng = np.random.default_rng(5)
    reps, fails = 300, 0
    for _ in range(reps):
        vals = rng.normal(0.5, 0.05, size=(3, 5))
        df = build([row("a", s, {f"m_{j}": vals[s, j] for j in range(5)}) for s in range(3)])
        fails += verdict({"kind": "at_least", "metric": "m_", "axis": "suffix", "value": 0.5}, df).status == FAIL
    assert fails / reps <= 0.025 + 0.027, fails / reps


def test_false_pass_with_test_noise_stays_under_alpha_by_simulation():
    """at_most 0.05 when the true accuracy is 0.06 on 100 test rows: 5.5% false PASS with 2 seeds before (only ties
    decided); now 2 seeds never decide and 3 stay under the nominal 2.5%."""
    rng = np.random.default_rng(6)
    reps, passes = 600, {2: 0, 3: 0}
    for _ in range(reps):
        for k in passes:
            vals = rng.binomial(100, 0.06, size=k) / 100
            df = build([{**row("a", s, {"acc": vals[s]}), "items/acc": 100} for s in range(k)])
            passes[k] += verdict({"kind": "at_most", "metric": "acc", "value": 0.05}, df).status == PASS
    assert passes[2] == 0 and passes[3] / reps <= 0.025 + 0.02, passes


def test_beats_pairs_seeds_and_the_test_decides(df):
    ab = {"a": {"where": {"model.pos_emb": "rel_kq"}}, "b": {"where": {"model.pos_emb": "abs"}}}
    d = np.array([0.96, 0.9, 0.93]) - np.array([0.0, 0.02, 0.01])
    ci = sps.ttest_rel([0.96, 0.9, 0.93], [0.0, 0.02, 0.01]).confidence_interval(0.95)
    p = sps.ttest_1samp(d, 0, alternative="greater").pvalue
    v = verdict({"kind": "beats", "metric": "exact/len_10", **ab}, df)
    assert (v.status, v.measured) == (PASS, f"0.93 vs 0.01: a-b +{d.mean():.2f} [+{ci.low:.2f}, +{ci.high:.2f}], p = {p:.2g} (3 seeds)")
    assert v.method == "paired by seed: 95% interval of the mean difference; one-sided t-test of difference > margin 0"
    v = verdict({"kind": "beats", "metric": "exact/len_10", "margin": 0.95, **ab}, df)  # the margin is inside the interval
    assert v.status == INCONCLUSIVE and "seeds would decide" in v.power
    assert verdict({"kind": "beats", "metric": "exact/len_10", "margin": 1.1, **ab}, df).status == FAIL
    assert verdict({"kind": "beats", "metric": "exact/len_10", "higher_is_better": False, **ab}, df).status == FAIL
    v = verdict({"kind": "beats", "metric": "exact/len_10", "test": "wilcoxon", **ab}, df)  # 3 seeds: p >= 1/8
    assert v.status == INCONCLUSIVE and "p = 0.12" in v.measured and "it cannot decide" in v.method  # was PASS next to p = 0.125
    assert "~6 seeds would decide" in v.power  # the fewest at which the rank test can reach 0.025
    six = frame(acc={"rel_kq": [{10: v} for v in (0.9, 0.93, 0.92, 0.95, 0.91, 0.96)],
                     "abs": [{10: v} for v in (0.0, 0.02, 0.01, 0.03, 0.05, 0.02)]})
    assert verdict({"kind": "beats", "metric": "exact/len_10", "test": "wilcoxon", **ab}, six).status == PASS  # 1/64 < 0.025


def test_beats_unpaired_and_best_of_selects_on_a_validation_metric():
    df = build([row("a", s, {"m": 0.8 + 0.01 * s}) for s in (0, 1, 2)] + [row("b", s, {"m": 0.5 + 0.01 * s}) for s in (5, 6, 7)])
    v = verdict({"kind": "beats", "metric": "m", "a": {"where": {"model.pos_emb": "a"}}, "b": {"where": {"model.pos_emb": "b"}}}, df)
    assert v.status == PASS and v.method.startswith("unpaired (Welch)") and "(3 runs)" in v.measured
    # k=1 scores best on the reported metric, k=2 on the validation metric: the pick follows validation
    runs = [row("a", s, {"m": m, "val": val}, k=k) for k, m, val in ((1, 0.95, 0.5), (2, 0.90, 0.9)) for s in range(3)]
    grid = build(runs + [row("b", s, {"m": 0.7 + 0.01 * s}) for s in range(3)])
    side = {"where": {"model.pos_emb": "a"}, "best_of": ["k"], "select_on": "val"}
    v = verdict({"kind": "beats", "metric": "m", "a": side, "b": {"where": {"model.pos_emb": "b"}}}, grid)
    assert v.measured.startswith("0.90 vs 0.71")
    with pytest.raises(ValueError, match="name the validation metric it picks on in 'select_on'"):
        CHECK.validate_python({"kind": "beats", "metric": "m", "a": {"best_of": ["k"]}, "b": {}})


def test_a_negative_margin_lets_a_trail_b_by_less_than_it():
    df = build([row("a", s, {"m": 0.500 + 0.01 * s}) for s in (0, 1, 2)] + [row("b", s, {"m": 0.505 + 0.01 * s}) for s in (0, 1, 2)])
    ab = {"a": {"where": {"model.pos_emb": "a"}}, "b": {"where": {"model.pos_emb": "b"}}, "exact": True}
    assert verdict({"kind": "beats", "metric": "m", "margin": -0.01, **ab}, df).status == PASS  # a trails by 0.005
    assert verdict({"kind": "beats", "metric": "m", "margin": -0.001, **ab}, df).status == FAIL
    from harness.spec.claim_models import Beats

    assert describe(Beats(kind="beats", metric="m", margin=-0.01, **ab)).startswith("m: a > b - 0.01")
    assert describe(Beats(kind="beats", metric="m", margin=0.02, higher_is_better=False, **ab)).startswith("m: a < b - 0.02")


def test_monotone_is_tested_and_a_flat_line_never_passes():
    x = {1: 0.2, 2: 0.5, 3: 0.8}
    jitter = np.random.default_rng(0).normal(0, 0.01, size=(4, 3))
    rising = build([row("a", s, {"m": x[k] + jitter[k, s]}, k=k) for k in x for s in range(3)])
    inc = {"kind": "monotone", "metric": "m", "axis": "k", "direction": "increasing"}
    v = verdict(inc, rising)
    assert v.status == PASS and v.measured.startswith("step ")  # the weakest of the steps and the rise
    flat = build([row("a", s, {"m": 0.04 + jitter[k, s] / 10}, k=k) for k in x for s in range(3)])  # priming_grows_with_k's line
    v = verdict({**inc, "tolerance": 0.05}, flat)
    assert v.status == INCONCLUSIVE and "0.04 → 0.04 over k 1..3: rise" in v.measured  # was PASS: the means never fell by 0.05
    falling = build([row("a", s, {"m": 0.8 - 0.3 * (k - 1) + jitter[k, s]}, k=k) for k in x for s in range(3)])
    v = verdict(inc, falling)
    assert v.status == FAIL and v.measured.startswith("0.80 → 0.19 over k 1..3: rise -0.61")  # the strongest failure
    assert describe(CHECK.validate_python({**inc, "min_rise": 0.1})) == "m increasing, rise > 0.1 (every k)"


def depth_frame():
    """Learning times of two features along depth: feature 1 becomes the faster one from depth 3."""
    t0, t1 = {1: 10.0, 2: 20.0, 3: 40.0, 4: 80.0}, {1: 12.0, 2: 21.0, 3: 30.0, 4: 35.0}
    return build([{"run_id": f"r{d}", "cell": f"d{d}", "seed": 0, "model.depth": d, "time/f0": t0[d], "time/f1": t1[d]} for d in t0])


def test_crossover_exact_and_tested():
    df = depth_frame()
    base = {"kind": "crossover", "axis": "model.depth", "a": {"metric": "time/f0"}, "b": {"metric": "time/f1"}, "exact": True}
    v = verdict({**base, "at": 3}, df)
    assert (v.status, v.measured) == (PASS, "swaps at depth 3 (a-b -1.00 → 10.00)")
    v = verdict({**base, "at": 2}, df)
    assert v.status == FAIL and v.measured.endswith("expected at 2")
    assert verdict({**base, "to": 2}, df).measured == "no swap: a below b at all 2 points"
    noisy = build([{"run_id": f"r{d}{s}", "cell": f"d{d}", "seed": s, "model.depth": d, "a": (d - 2.5) + 0.1 * s, "b": 0.0}
                   for d in (1, 2, 3, 4) for s in range(3)])
    tested = {"kind": "crossover", "axis": "model.depth", "a": {"metric": "a"}, "b": {"metric": "b"}}
    assert verdict(tested, noisy).status == PASS  # below at 1 and 2, above at 3 and 4, each significant
    same = noisy.with_columns(b=noisy["a"] - 5 + 0.05 * noisy["seed"] ** 2)
    assert verdict(tested, same).status == FAIL  # a above b everywhere


def test_references_make_a_claim_untestable_without_headroom():
    flat = frame(items=200, acc={"jepa": [{10: 0.30 + 0.01 * s} for s in range(3)], "mae": [{10: 0.28 + 0.01 * s} for s in range(3)],
                                 "constant": [{10: 0.28 + 0.01 * s} for s in range(3)], "oracle": [{10: 0.284 + 0.01 * s} for s in range(3)]})
    ab = {"kind": "beats", "metric": "exact/len_10", "a": {"where": {"model.pos_emb": "jepa"}}, "b": {"where": {"model.pos_emb": "mae"}}}
    v = verdict(ab, flat, REFS)
    assert v.status == UNTESTABLE and "headroom +0.00" in v.measured and "is not verified above 0" in v.measured
    assert v.headroom.startswith("+0.00 [") and "oracle 0.29" in v.headroom and "constant 0.29" in v.headroom
    assert verdict(ab, flat).status == INCONCLUSIVE  # no references: the old verdict, headroom unknown
    room = frame(items=200, acc={**ACC, "jepa": [{10: 0.6 + 0.01 * s} for s in range(3)], "mae": [{10: 0.3 + 0.01 * s} for s in range(3)]})
    v = verdict(ab, room, REFS)
    assert v.status == PASS and v.headroom.startswith("+1.00") and v.headroom.endswith("a off the floor, b off the floor")
    both_low = frame(items=200, acc={**ACC, "jepa": [{10: 0.005 * s} for s in range(3)], "mae": [{10: 0.003 * s} for s in range(3)]})
    assert "every compared arm is within noise of the floor" in verdict(ab, both_low, REFS).measured
    vs_floor = {**ab, "b": {"where": {"model.pos_emb": "constant"}}}  # side b is the floor itself: the arms rule skips it
    assert verdict(vs_floor, both_low, REFS).status == INCONCLUSIVE


def test_references_and_bounds():
    df = frame(items=200, acc={**ACC, "mid": [{10: 0.5}, {10: 0.52}, {10: 0.48}]})
    reach = {"kind": "at_least", "metric": "exact/len_10", "where": {"model.pos_emb": "rel_kq"}, "value": 0.7}
    assert verdict(reach, df, REFS).status == PASS
    low_ceiling = {**REFS, "oracle": ReferenceSpec(role="ceiling", where={"model.pos_emb": "mid"})}  # 0.50 at 10 digits
    v = verdict(reach, df, low_ceiling)
    assert v.status == UNTESTABLE and "does not get past the bound 0.7: nothing at this scale does" in v.measured
    high_floor = {"constant": ReferenceSpec(role="floor", where={"model.pos_emb": "mid"}), "oracle": REFS["oracle"]}
    v = verdict({**reach, "value": 0.45}, df, high_floor)  # the floor (0.50) already reaches 0.45
    assert v.status == UNTESTABLE and "the trivial arm may pass" in v.measured
    fails = {"kind": "at_most", "metric": "exact/len_15", "where": {"model.pos_emb": "abs"}, "value": 0.05}
    assert verdict(fails, df, REFS).status == PASS  # the ceiling gets past 0.05: staying below it says something
    v = verdict(fails, df, {"constant": REFS["constant"], "nope": ReferenceSpec(role="ceiling", where={"model.pos_emb": "rope"})})
    assert v.status == NO_DATA and "reference 'nope': no runs" in v.measured
    assert verdict(fails, df, REFS, references=[]).headroom == ""  # the claim opts out


def test_an_untestable_claim_quotes_the_headroom_of_the_part_it_shows():
    """copying: "min 0.15 at len 40; UNTESTABLE: headroom +0.68 ... (the 20-letter point)" beside a headroom column
    at 40 letters.  The reason comes from the part shown, so the two agree."""
    acc = {"rel_kq": [{10: 0.3, 15: 0.1}, {10: 0.35, 15: 0.12}, {10: 0.32, 15: 0.08}], "constant": ACC["constant"],
           "oracle": [{10: 0.95, 15: 0.8}, {10: 0.05, 15: 0.0}, {10: 0.9, 15: 0.6}]}  # a ceiling seed that did not learn
    v = verdict({**REL, "value": 0.9}, frame(items=200, acc=acc), REFS)
    shown = v.headroom.split(" (")[0]
    assert v.status == UNTESTABLE and "at len 15" in v.measured and f"UNTESTABLE: headroom {shown} " in v.measured, (v.measured, v.headroom)


def test_reference_matched_on_the_points_config():
    rows = [row(pe, s, {"acc": acc + 0.01 * s, "items/acc": 500}, task__name=task) for task, vals in
            (("easy", {"ssl": 0.9, "floor": 0.5, "sup": 0.95}), ("hard", {"ssl": 0.3, "floor": 0.28, "sup": 0.31}))
            for pe, acc in vals.items() for s in range(3)]
    df = build(rows)
    refs = {"floor": ReferenceSpec(role="floor", where={"model.pos_emb": "floor"}, match=["task.name"]),
            "sup": ReferenceSpec(role="ceiling", where={"model.pos_emb": "sup"}, match=["task.name"])}
    check = {"kind": "at_least", "metric": "acc", "where": {"model.pos_emb": "ssl", "task.name": "easy"}, "value": 0.6}
    v = verdict(check, df, refs)
    assert v.status == PASS and "sup 0.96" in v.headroom and "floor 0.51" in v.headroom
    v = verdict({**check, "where": {"model.pos_emb": "ssl", "task.name": "hard"}, "value": 0.2}, df, refs)
    assert v.status == UNTESTABLE  # the hard task's ceiling is at its floor
    v = verdict({**check, "where": {"model.pos_emb": "ssl"}}, df, refs)
    assert v.status == NO_DATA and "varies within the compared runs" in v.measured


def _family(p_two: list[float]):
    """Claims `m_i >= 0` whose two-sided p-values are exactly `p_two` (4 seeds each, t-test with 3 df)."""
    import polars as pl

    frames, claims = [], []
    for i, p in enumerate(p_two):
        x = sps.t.isf(p / 2, 3) * math.sqrt(4 / 3) / 2 + np.array([1.0, -1.0, 1.0, -1.0])  # mean / (sd / 2) = t
        frames.append(build([row("a", s, {f"m{i}": float(v)}) for s, v in enumerate(x)]))
        claims.append(ClaimSpec(id=f"c{i}", text="t", check=CHECK.validate_python({"kind": "at_least", "metric": f"m{i}", "value": 0})))
    return claims, pl.concat(frames, how="diagonal")


def test_holm_controls_the_family_and_says_when_it_changed_a_verdict():
    claims, df = _family([0.01, 0.02, 0.04])  # Holm: 0.01 < 0.05/3, 0.02 < 0.05/2, 0.04 < 0.05
    assert [r.status for r in check_claims(claims, df)] == [PASS, PASS, PASS]
    claims, df = _family([0.01, 0.03, 0.04])  # 0.03 >= 0.05/2: Holm stops there
    holm, alone = check_claims(claims, df), check_claims(claims, df, family="none")
    assert [r.status for r in alone] == [PASS, PASS, PASS]
    assert [r.status for r in holm] == [PASS, INCONCLUSIVE, INCONCLUSIVE]
    assert "decided alone (p = 0.03 < 0.05), not after Holm over 3 claims (adjusted p = 0.06)" in holm[1].measured
    assert holm[0].method.endswith("family: Holm over 3 claims") and holm[0].p_value == pytest.approx(0.01)


def test_family_wise_error_of_true_nulls_by_simulation():
    """Five claims whose means sit exactly on their bounds: the chance that any of them is decided stays
    under alpha with Holm (each alone: up to 5 x 5%)."""
    import polars as pl

    rng = np.random.default_rng(7)
    reps, any_decided = 150, 0
    claims = [ClaimSpec(id=f"c{i}", text="t", check=CHECK.validate_python({"kind": "at_least", "metric": f"m{i}", "value": 0}))
              for i in range(5)]
    for _ in range(reps):
        df = pl.concat([build([row("a", s, {f"m{i}": float(v)}) for s, v in enumerate(rng.normal(0, 1, 4))]) for i in range(5)],
                       how="diagonal")
        any_decided += any(r.status != INCONCLUSIVE for r in check_claims(claims, df))
    assert any_decided / reps <= 0.05 + 0.054, any_decided / reps


def test_seeds_until_decided_spends_alpha_over_the_looks():
    assert look_alpha(0.05, 3, 1, 10, 3) == pytest.approx(0.05 * 3 / 10)
    assert look_alpha(0.05, 3, 1, 10, 4) == pytest.approx(0.05 / 10)
    assert sum(look_alpha(0.05, 3, 2, 10, n) for n in (3, 5, 7, 9, 10)) == pytest.approx(0.05)


@pytest.mark.parametrize("max_seeds", [10, 20])
def test_seeds_until_decided_false_pass_rate_by_simulation(max_seeds):
    """The loop adds a seed while undecided; the true mean sits on the bound.  Testing every look at the full
    alpha gave P(PASS) 0.083 / 0.116 for max 10 / 20 seeds (nominal 0.025); spending alpha keeps it under."""
    rng = np.random.default_rng(8)
    reps, spent, naive = 1000, 0, 0
    for _ in range(reps):
        x = list(rng.normal(0.5, 0.1, 3))
        decided_spent = decided_naive = False
        for n in range(3, max_seeds + 1):
            if n > len(x):
                x.append(float(rng.normal(0.5, 0.1)))
            p = stats.mean_p_above(x, 0.5)
            decided_spent = decided_spent or p < look_alpha(0.05, 3, 1, max_seeds, n) / 2
            decided_naive = decided_naive or p < 0.025
        spent += decided_spent
        naive += decided_naive
    assert spent / reps <= 0.025 + 0.015 and naive / reps > 0.06, (spent / reps, naive / reps)


def test_no_data_and_all_and_not_checked(df):
    assert verdict({"kind": "at_least", "metric": "exact/len_99", "value": 0}, df).status == NO_DATA
    v = verdict({"kind": "at_least", "metric": "exact/len_05", "value": 0, "min_runs": 13}, df)
    assert (v.status, v.measured) == (NO_DATA, "12 runs, 13 required")
    ok = {"kind": "at_least", "metric": "exact/len_05", "where": {"model.pos_emb": "rel_kq"}, "value": 0.5, "exact": True}
    bad = {"kind": "at_most", "metric": "exact/len_05", "where": {"model.pos_emb": "abs"}, "value": 0.5}
    empty = {"kind": "at_least", "metric": "nope", "value": 0}
    undecided = {"kind": "at_least", "metric": "exact/len_15", "where": {"model.pos_emb": "rel_kq"}, "value": 0.7}
    assert verdict({"kind": "all", "checks": [ok, ok]}, df).status == PASS
    assert verdict({"kind": "all", "checks": [ok, undecided]}, df).status == INCONCLUSIVE
    assert verdict({"kind": "all", "checks": [ok, empty, undecided]}, df).status == NO_DATA
    v = verdict({"kind": "all", "checks": [ok, bad]}, df)
    assert v.status == FAIL and v.measured.count(";") == 1
    claims = [ClaimSpec(id="a", text="t"), ClaimSpec(id="b", text="t", check=CHECK.validate_python(bad)),
              ClaimSpec(id="c", text="t", check=CHECK.validate_python(undecided))]
    results = check_claims(claims, df)
    assert [(r.status, r.failed, r.inconclusive) for r in results] == [(UNCHECKED, False, False), (FAIL, True, False), (INCONCLUSIVE, False, True)]
    assert describe(CHECK.validate_python(bad)) == "exact/len_05 ≤ 0.5 (pos_emb=abs)"
    assert describe(CHECK.validate_python({**ok, "where": {"task.train_len": [5, 20], "model.name": ["lstm", "mamba"]}})) == \
        "exact/len_05 ≥ 0.5 (train_len=[5, 20], model=lstm/mamba)"
    assert math.isnan(results[0].p_value)


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
    ("      kind: beats\n      metric: m\n      a: {best_of: [k]}\n      b: {}", 12, "claims[0].check.a: 'best_of' picks a configuration"),
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
