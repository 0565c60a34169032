"""Statistics over seeds, all from scipy.stats: a cell's centre and 95% interval, whether the best row of a
table is separated from another row, and the paired comparison behind `beats` claims.

Intervals (`interval`): the mean with a t-interval when a cell has fewer than 5 runs (scipy.stats.ttest_1samp's
confidence_interval), else a BCa bootstrap (scipy.stats.bootstrap, 2,000 resamples, seeded: the same
report every time); the median and the IQM (interquartile mean, scipy.stats.trim_mean at 25%) always use
the bootstrap.  One run has no interval.  `METHODS` names each in words for captions and claims."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
BOOTSTRAP_MIN = 5  # cells with at least this many runs get a bootstrap interval of the mean, fewer a t-interval
RESAMPLES = 2000
SEED = 0  # the bootstrap's generator: a report is the same every time it is built


def iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% (rliable's robust aggregate)."""
    return stats.trim_mean(x, 0.25, axis=axis)


STATISTICS = {"mean": np.mean, "median": np.median, "iqm": iqm}
METHODS = {
    "t": "t-interval",
    "bootstrap": "BCa bootstrap (2,000 resamples)",
    "none": "no interval (one run)",
}


@dataclass(frozen=True)
class Estimate:
    """A cell's statistic over its runs and its interval (lo, hi: nan without one)."""

    n: int
    center: float
    lo: float
    hi: float
    sd: float  # sample standard deviation (ddof=1; nan for one run)
    method: str  # a key of METHODS

    @property
    def has_interval(self) -> bool:
        return not math.isnan(self.lo)


NAN = float("nan")


def _bootstrap(x: np.ndarray, statistic, confidence: float) -> tuple[float, float]:
    if np.ptp(x) == 0:  # every run the same value: the resampled statistic cannot move
        return float(x[0]), float(x[0])
    with warnings.catch_warnings():  # BCa warns (and gives nan) on very skewed small samples: fall back to percentile
        warnings.simplefilter("ignore")
        for method in ("BCa", "percentile"):
            ci = stats.bootstrap((x,), statistic, confidence_level=confidence, n_resamples=RESAMPLES, method=method,
                                 vectorized=True, rng=np.random.default_rng(SEED)).confidence_interval
            if not (math.isnan(ci.low) or math.isnan(ci.high)):
                return float(ci.low), float(ci.high)
    return NAN, NAN


def interval(values: Sequence[float], statistic: str = "mean", confidence: float = CONFIDENCE) -> Estimate:
    x = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    n = len(x)
    if n == 0:
        return Estimate(0, NAN, NAN, NAN, NAN, "none")
    center = float(STATISTICS[statistic](x))
    sd = float(np.std(x, ddof=1)) if n > 1 else NAN
    if n == 1:
        return Estimate(1, center, NAN, NAN, sd, "none")
    if statistic == "mean" and n < BOOTSTRAP_MIN:
        if sd == 0:
            return Estimate(n, center, center, center, sd, "t")
        ci = stats.ttest_1samp(x, 0.0).confidence_interval(confidence)
        return Estimate(n, center, float(ci.low), float(ci.high), sd, "t")
    lo, hi = _bootstrap(x, STATISTICS[statistic], confidence)
    return Estimate(n, center, lo, hi, sd, "bootstrap")


# ------------------------------------------------------------------ two cells
def separated(a: Sequence[float], b: Sequence[float], alpha: float = 1 - CONFIDENCE, paired: bool = False) -> bool | None:
    """Whether two cells' means differ beyond noise: a paired t-test (scipy.stats.ttest_rel) when both hold the
    same seeds, else Welch's t-test (ttest_ind, unequal variances), two-sided at `alpha`.  None: a cell has one
    run, so its noise is unknown."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    if len(x) < 2 or len(y) < 2:
        return None
    if paired:
        d = x - y
        if np.ptp(d) == 0:  # the same difference on every seed: decided by its sign
            return bool(d[0] != 0)
        return bool(stats.ttest_rel(x, y).pvalue < alpha)
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        return bool(x[0] != y[0])
    return bool(stats.ttest_ind(x, y, equal_var=False).pvalue < alpha)


@dataclass(frozen=True)
class Comparison:
    """`a` - `b` (signed so that positive is better) over paired seeds, or unpaired when the seeds differ."""

    n: int  # pairs (paired) or runs of the smaller side
    diff: float  # mean difference
    lo: float
    hi: float
    pvalue: float  # one-sided: the difference exceeds the margin
    paired: bool
    test: str  # in words
    seeds_needed: int | None  # at the observed variance, the pairs needed for the interval to clear the margin


def seeds_needed(sd: float, gap: float, confidence: float, cap: int = 10_000) -> int | None:
    """Smallest n with t_{n-1} * sd / sqrt(n) < |gap| (the interval's half-width below its distance to the margin)."""
    if math.isnan(sd) or sd == 0 or gap == 0:
        return None
    for n in range(2, cap + 1):
        if stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n) < abs(gap):
            return n
    return None


def compare(a: Sequence[float], b: Sequence[float], margin: float = 0.0, confidence: float = CONFIDENCE,
            paired: bool = True, test: str = "t") -> Comparison:
    """`a` and `b` aligned by seed when `paired` (same seed = same data stream).  The interval is a
    t-interval of the mean difference (paired: scipy.stats.ttest_rel; unpaired: Welch's ttest_ind); the
    p-value tests difference > margin (one-sided) with the t-test, the Wilcoxon signed-rank test
    (`test: wilcoxon`, paired only) or a sign-flip / label permutation test (`test: permutation`,
    scipy.stats.permutation_test, exact for small samples)."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    if paired:
        d = x - y
        n, diff = len(d), float(np.mean(d))
        if n < 2 or np.ptp(d) == 0:
            p = NAN if n < 2 else (0.0 if diff > margin else 1.0)
            return Comparison(n, diff, NAN if n < 2 else diff, NAN if n < 2 else diff, p, True, "paired", None)
        ci = stats.ttest_rel(x, y).confidence_interval(confidence)
        if test == "wilcoxon":
            p, name = float(stats.wilcoxon(d - margin, alternative="greater").pvalue), "Wilcoxon signed-rank"
        elif test == "permutation":
            p = float(stats.permutation_test((d - margin,), np.mean, permutation_type="samples", alternative="greater",
                                             rng=np.random.default_rng(SEED)).pvalue)
            name = "sign-flip permutation"
        else:
            p, name = float(stats.ttest_1samp(d - margin, 0.0, alternative="greater").pvalue), "paired t-test"
        need = seeds_needed(float(np.std(d, ddof=1)), diff - margin, confidence)
        return Comparison(n, diff, float(ci.low), float(ci.high), p, True, name, need)
    n, diff = min(len(x), len(y)), float(np.mean(x) - np.mean(y))
    if n < 2:
        return Comparison(n, diff, NAN, NAN, NAN, False, "unpaired", None)
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        return Comparison(n, diff, diff, diff, 0.0 if diff > margin else 1.0, False, "unpaired", None)
    ci = stats.ttest_ind(x, y, equal_var=False).confidence_interval(confidence)
    if test == "permutation":
        p = float(stats.permutation_test((x - margin, y), lambda u, v, axis: np.mean(u, axis=axis) - np.mean(v, axis=axis),
                                         alternative="greater", rng=np.random.default_rng(SEED)).pvalue)
        name = "permutation (unpaired)"
    else:
        p, name = float(stats.ttest_ind(x - margin, y, equal_var=False, alternative="greater").pvalue), "Welch's t-test"
    pooled = math.sqrt(np.var(x, ddof=1) + np.var(y, ddof=1))
    return Comparison(n, diff, float(ci.low), float(ci.high), p, False, name, seeds_needed(pooled, diff - margin, confidence))
