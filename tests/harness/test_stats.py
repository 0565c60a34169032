"""Statistics over seeds (harness.report.stats) against scipy.stats computed here by hand: intervals, the
separation test of table rows, the paired comparison of `beats` and the seeds that would decide it."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from harness.report import stats


def test_t_interval_under_5_runs_and_bootstrap_from_5():
    x = [0.2, 0.4, 0.3]
    e = stats.interval(x)
    m, se = np.mean(x), sps.sem(x)
    half = sps.t.ppf(0.975, 2) * se
    assert (e.n, e.method) == (3, "t") and e.center == pytest.approx(m)
    assert (e.lo, e.hi) == pytest.approx((m - half, m + half))
    y = [0.1, 0.5, 0.3, 0.35, 0.2, 0.45]
    b = stats.interval(y)
    ref = sps.bootstrap((np.array(y),), np.mean, n_resamples=2000, rng=np.random.default_rng(0)).confidence_interval
    assert b.method == "bootstrap" and (b.lo, b.hi) == pytest.approx((ref.low, ref.high))
    assert stats.interval(y).lo == b.lo  # seeded: the same report every time


def test_one_run_has_no_interval_and_equal_runs_a_point_interval():
    e = stats.interval([0.7])
    assert e.n == 1 and e.center == 0.7 and not e.has_interval and e.method == "none"
    z = stats.interval([0.5, 0.5])
    assert (z.lo, z.hi) == (0.5, 0.5)
    assert stats.interval([]).n == 0


def test_median_and_iqm_use_the_bootstrap():
    x = [1.0, 2.0, 3.0, 4.0, 100.0]
    assert stats.interval(x, "median").center == 3.0 and stats.interval(x, "median").method == "bootstrap"
    assert stats.interval(x, "iqm").center == pytest.approx(sps.trim_mean(x, 0.25))


def test_separated_paired_and_welch():
    a, b = [0.90, 0.92, 0.91], [0.50, 0.52, 0.49]
    assert stats.separated(a, b, paired=True) is True
    assert stats.separated([0.5, 0.9], [0.6, 0.4]) is False  # noise larger than the gap
    assert stats.separated([0.5], [0.1]) is None  # one run: no noise estimate
    assert stats.separated([0.3, 0.3], [0.3, 0.3]) is False and stats.separated([0.4, 0.4], [0.3, 0.3]) is True


def test_compare_paired_reports_the_difference_interval_and_a_one_sided_p():
    a, b = [0.80, 0.85, 0.83, 0.90], [0.70, 0.72, 0.71, 0.74]
    c = stats.compare(a, b, margin=0.05)
    d = np.subtract(a, b)
    ci = sps.ttest_rel(a, b).confidence_interval(0.95)
    assert c.paired and c.n == 4 and c.diff == pytest.approx(d.mean())
    assert (c.lo, c.hi) == pytest.approx((ci.low, ci.high))
    assert c.pvalue == pytest.approx(sps.ttest_1samp(d - 0.05, 0, alternative="greater").pvalue)
    w = stats.compare(a, b, test="wilcoxon")
    assert w.test == "Wilcoxon signed-rank" and w.pvalue == pytest.approx(sps.wilcoxon(d, alternative="greater").pvalue)
    p = stats.compare(a, b, test="permutation")
    assert p.test == "sign-flip permutation" and p.pvalue == pytest.approx(1 / 16)  # exact: 2^4 sign flips, one as large
    u = stats.compare([0.8, 0.9, 0.85], [0.6, 0.65], paired=False)
    assert not u.paired and u.test == "Welch's t-test"


def test_seeds_needed_clears_the_margin_at_the_observed_variance():
    n = stats.seeds_needed(sd=0.1, gap=0.05, confidence=0.95)
    assert n is not None and sps.t.ppf(0.975, n - 1) * 0.1 / math.sqrt(n) < 0.05
    assert sps.t.ppf(0.975, n - 2) * 0.1 / math.sqrt(n - 1) >= 0.05  # the smallest such n
    assert stats.seeds_needed(0.0, 0.1, 0.95) is None and stats.seeds_needed(0.1, 0.0, 0.95) is None
