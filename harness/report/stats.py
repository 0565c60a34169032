"""Statistics over seeds, one estimator per question, all from scipy.stats.

A run's value is its metric on a test set that every seed of the suite shares.  Two kinds of noise stand
behind a cell's mean: the training seed's (the spread over seeds) and, for a proportion, the test set's own
(an accuracy over N independent test items; a run says so by logging `items/<prefix>`, see
harness.report.frame.items_of).  Every seed shares the test set, so no number of seeds averages that part
away; leaving it out gives seeds that happen to agree a zero-width interval.

`interval(values, statistic, items)` -> Estimate, a cell's centre and interval at `level`:
- mean, no items: the t-interval (scipy.stats.t, n - 1 degrees of freedom) at every n >= 2;
- mean of a proportion: the score interval of mu solving (xbar - mu)^2 <= t^2 s^2 / n + z^2 mu (1 - mu) / N,
  the t-interval's square for the seeds plus Wilson's for the N test items (at s = 0 it is Wilson's interval,
  as N grows the t-interval), clipped to [0, 1]: it covers at least its level (simulated in the tests);
- median: the distribution-free order-statistic interval (scipy.stats.quantile_test), which exists from 6
  runs at 95%; iqm (the interquartile mean, rliable's aggregate): a percentile bootstrap from IQM_MIN runs;
- no interval: one run, a median / IQM of too few runs, or seeds that agree exactly on a metric with no
  test items (nothing then measures its noise).
`difference(a, b)` -> Difference: a - b paired by seed (or Welch's, unpaired), its interval with both sides'
test-set noise added (Agresti-Caffo: one success and one failure added to each side's items; an upper
bound when the two arms' errors on an item are not negatively correlated), one-sided p-values of the chosen
test, and its power: the smallest difference the seeds in hand detect at 80% power, and the seeds that would.
`MIN_DECIDE`: fewer seeds than this never decide a claim nor make a cell bold."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
POWER = 0.8  # the power at which a check states what it can detect and the seeds that would decide it
MIN_DECIDE = 3  # fewer seeds never decide a claim nor bold a cell
MEDIAN_MIN = 6  # the order-statistic interval of the median exists at 95% from 6 runs
IQM_MIN = 20  # the IQM's percentile bootstrap covers its level from about this many runs (tests/harness/test_stats.py)
RESAMPLES = 2000
SEED = 0  # the bootstrap's and the permutation test's generator: a report is the same every time it is built
NAN = float("nan")
SEEDS_CAP = 10_000


def iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% (rliable's robust aggregate)."""
    return stats.trim_mean(x, 0.25, axis=axis)


STATISTICS: dict[str, Callable] = {"mean": np.mean, "median": np.median, "iqm": iqm}
METHODS = {
    "t": "t-interval over seeds",
    "t+items": "t-interval over seeds + Wilson interval of the test items",
    "order": "order-statistic interval of the median",
    "bootstrap": "percentile bootstrap (2,000 resamples)",
    "tied": "no interval (the seeds agree exactly and the metric declares no test items)",
    "few": "no interval (too few runs for this statistic)",
    "none": "no interval (one run)",
}


@dataclass(frozen=True)
class Estimate:
    """A cell's statistic over its runs and its interval (lo, hi: nan without one); `items`: the test items
    behind each value of a proportion (None: not a proportion)."""

    n: int
    center: float
    lo: float
    hi: float
    sd: float  # sample standard deviation over runs (ddof=1; nan for one run)
    method: str  # a key of METHODS
    items: int | None = None

    @property
    def has_interval(self) -> bool:
        return not math.isnan(self.lo)


def _quantiles(level: float, df: float) -> tuple[float, float]:
    """(t, z) two-sided quantiles at `level`: t with `df` degrees of freedom, z the normal one."""
    q = 0.5 + level / 2
    return float(stats.t.ppf(q, df)), float(stats.norm.ppf(q))


def _score_interval(mean: float, seed_var: float, items: int, t: float, z: float) -> tuple[float, float]:
    """Roots of (1 + z^2/N) mu^2 - (2 mean + z^2/N) mu + mean^2 - t^2 seed_var = 0, clipped to [0, 1]."""
    a = 1 + z * z / items
    b = -(2 * mean + z * z / items)
    c = mean * mean - t * t * seed_var
    root = math.sqrt(max(b * b - 4 * a * c, 0.0))
    return max(0.0, (-b - root) / (2 * a)), min(1.0, (-b + root) / (2 * a))


def mean_interval(x: np.ndarray, items: int | None, level: float) -> tuple[float, float]:
    """The interval of the mean at `level` (module docstring); (nan, nan) when there is none."""
    n = len(x)
    if n < 2:
        return NAN, NAN
    m, var = float(np.mean(x)), float(np.var(x, ddof=1))
    t, z = _quantiles(level, n - 1)
    if items:
        return _score_interval(min(max(m, 0.0), 1.0), var / n, items, t, z)
    if var == 0:
        return NAN, NAN
    half = t * math.sqrt(var / n)
    return m - half, m + half


def interval(values: Sequence[float], statistic: str = "mean", items: int | None = None,
             level: float = CONFIDENCE) -> Estimate:
    x = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    n = len(x)
    if n == 0:
        return Estimate(0, NAN, NAN, NAN, NAN, "none", items)
    center = float(STATISTICS[statistic](x))
    sd = float(np.std(x, ddof=1)) if n > 1 else NAN
    if n == 1:
        return Estimate(1, center, NAN, NAN, sd, "none", items)
    if statistic == "mean":
        lo, hi = mean_interval(x, items, level)
        method = "t+items" if items else "t" if not math.isnan(lo) else "tied"
        return Estimate(n, center, lo, hi, sd, method, items)
    if statistic == "median":
        if n < MEDIAN_MIN:
            return Estimate(n, center, NAN, NAN, sd, "few", items)
        ci = stats.quantile_test(x, q=center, p=0.5).confidence_interval(level)
        return Estimate(n, center, float(ci.low), float(ci.high), sd, "order" if not math.isnan(ci.low) else "few", items)
    if n < IQM_MIN:
        return Estimate(n, center, NAN, NAN, sd, "few", items)
    if np.ptp(x) == 0:
        return Estimate(n, center, NAN, NAN, sd, "tied", items)
    ci = stats.bootstrap((x,), iqm, confidence_level=level, n_resamples=RESAMPLES, method="percentile",
                         vectorized=True, rng=np.random.default_rng(SEED)).confidence_interval
    return Estimate(n, center, float(ci.low), float(ci.high), sd, "bootstrap", items)


def p_above(bounds: Callable[[float], tuple[float, float]], value: float, center: float) -> float:
    """One-sided p-value of "the quantity exceeds `value`" read off an interval family: the smallest alpha at
    which the level 1 - 2 alpha interval (`bounds(level)` -> (lo, hi)) lies wholly above `value`; 1 - that of
    "below" when the centre is not above it.  Consistent by construction with the intervals shown."""
    if math.isnan(center):
        return NAN

    def clears(alpha: float) -> bool:
        lo, hi = bounds(1 - 2 * alpha)
        return lo > value if center > value else hi < value

    if not clears(0.5 - 1e-9):  # not even the zero-width interval clears it: the centre is on the bound
        return 0.5
    lo_a, hi_a = 0.0, 0.5  # clears(hi_a) holds; find the smallest alpha that clears
    for _ in range(50):
        mid = (lo_a + hi_a) / 2
        lo_a, hi_a = (lo_a, mid) if clears(mid) else (mid, hi_a)
    return hi_a if center > value else 1 - hi_a


def mean_p_above(values: Sequence[float], value: float, items: int | None = None) -> float:
    """One-sided p-value that the mean exceeds `value` (the intervals of `interval`); nan without an interval.
    That it lies below `value`: 1 minus this."""
    x = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if math.isnan(mean_interval(x, items, CONFIDENCE)[0]):
        return NAN
    if not items:  # the t-test itself
        return float(stats.ttest_1samp(x, value, alternative="greater").pvalue)
    return p_above(lambda level: mean_interval(x, items, level), value, float(np.mean(x)))


# ------------------------------------------------------------------ power
def detectable(sd: float, n: int, noise_var: float, level: float = CONFIDENCE, power: float = POWER) -> float:
    """The smallest true distance from a bound (or margin) that `n` seeds detect with `power` at `level`: the
    seeds' part (t_{1-a/2} + t_power)^2 sd^2 / n (n - 1 df) plus the test items' (z_{1-a/2} + z_power)^2 noise_var,
    under a square root (as the intervals add them)."""
    if n < 2 or math.isnan(sd):
        return NAN
    t = float(stats.t.ppf(0.5 + level / 2, n - 1) + stats.t.ppf(power, n - 1))
    z = float(stats.norm.ppf(0.5 + level / 2) + stats.norm.ppf(power))
    return math.sqrt(t * t * sd * sd / n + z * z * noise_var)


def seeds_needed(sd: float, gap: float, noise_var: float = 0.0, level: float = CONFIDENCE, power: float = POWER,
                 cap: int = SEEDS_CAP) -> int | None:
    """The fewest seeds that detect a true distance `gap` with `power` (at the observed sd); None when no number
    of seeds would: the seeds agree (sd 0: only the test set's noise is left), the test set's own noise is larger
    than the gap, none up to `cap` does, or there is nothing to estimate (sd nan, gap 0)."""
    if math.isnan(sd) or sd == 0 or gap == 0 or math.isnan(gap):
        return None
    if detectable(sd, cap, noise_var, level, power) >= abs(gap):
        return None
    lo, hi = 2, cap
    while lo < hi:  # detectable() falls with n
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if detectable(sd, mid, noise_var, level, power) < abs(gap) else (mid + 1, hi)
    return lo


def item_var(p: float, items: int | None) -> float:
    """Agresti-Caffo's variance of a proportion p on `items` test items (one success and one failure added);
    0 without items."""
    if not items or math.isnan(p):
        return 0.0
    q = (min(max(p, 0.0), 1.0) * items + 1) / (items + 2)
    return q * (1 - q) / (items + 2)


# ------------------------------------------------------------------ two cells
@dataclass(frozen=True)
class Difference:
    """a - b (signed so that positive is better) over paired seeds, or unpaired when the seeds differ."""

    n: int  # pairs (paired) or runs of the smaller side
    diff: float  # mean difference
    lo: float
    hi: float
    paired: bool
    se: float  # the seed part's standard error of the difference (nan below 2 runs a side)
    noise_var: float  # the test items' variance of the difference (0 without items)
    df: float  # the seed part's degrees of freedom
    x: tuple[float, ...] = ()  # the samples (a, b: for the rank and permutation tests)
    y: tuple[float, ...] = ()

    @property
    def has_interval(self) -> bool:
        return not math.isnan(self.lo)

    @property
    def unit_sd(self) -> float:
        """The spread per seed (se * sqrt(n)): the paired differences' sd, or both sides' sds added in squares."""
        return self.se * math.sqrt(self.n)

    def bounds(self, level: float) -> tuple[float, float]:
        """The interval of the difference at `level`: t^2 (seed part) + z^2 (items part) under the square root."""
        if math.isnan(self.se) or (self.se == 0 and self.noise_var == 0):
            return NAN, NAN
        t, z = _quantiles(level, self.df)
        half = math.sqrt(t * t * self.se * self.se + z * z * self.noise_var)
        return self.diff - half, self.diff + half

    def p_above(self, margin: float, test: str = "t") -> float:
        """One-sided p-value of "the difference exceeds `margin`" by the `test` named (module docstring)."""
        if not self.has_interval:
            return NAN
        if test == "wilcoxon" and self.paired:
            d = np.subtract(self.x, self.y) - margin
            return float(stats.wilcoxon(d, alternative="greater").pvalue) if np.any(d != 0) else 0.5
        if test == "permutation":
            if self.paired:
                d = np.subtract(self.x, self.y) - margin
                return float(stats.permutation_test((d,), np.mean, permutation_type="samples", alternative="greater",
                                                    rng=np.random.default_rng(SEED)).pvalue)
            return float(stats.permutation_test((np.subtract(self.x, margin), np.asarray(self.y)),
                                                lambda u, v, axis: np.mean(u, axis=axis) - np.mean(v, axis=axis),
                                                alternative="greater", rng=np.random.default_rng(SEED)).pvalue)
        if self.noise_var == 0:
            return float(stats.t.sf((self.diff - margin) / self.se, self.df))
        return p_above(self.bounds, margin, self.diff)

    def p_below(self, margin: float, test: str = "t") -> float:
        """One-sided p-value of "the difference is below `margin`" (the mirror of p_above)."""
        flipped = Difference(self.n, -self.diff, -self.hi, -self.lo, self.paired, self.se, self.noise_var, self.df,
                             self.y, self.x)
        return flipped.p_above(-margin, test)

    def detectable(self, level: float = CONFIDENCE, power: float = POWER) -> float:
        return detectable(self.unit_sd, self.n, self.noise_var, level, power)

    def seeds_needed(self, gap: float, level: float = CONFIDENCE, power: float = POWER) -> int | None:
        return seeds_needed(self.unit_sd, gap, self.noise_var, level, power)


def min_attainable_p(test: str, n: int, m: int | None = None) -> float:
    """The smallest one-sided p-value a rank or permutation test can reach with n pairs (or n and m runs)."""
    if test in ("wilcoxon", "permutation") and m is None:
        return 0.5 ** n
    if test == "permutation":
        return 1 / math.comb(n + m, n)
    return 0.0


def difference(a: Sequence[float], b: Sequence[float], paired: bool, items_a: int | None = None,
               items_b: int | None = None, level: float = CONFIDENCE) -> Difference:
    """`a` - `b`, aligned by seed when `paired` (same seed = same data stream), with the interval at `level`."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    if not len(x) or not len(y):
        return Difference(0, NAN, NAN, NAN, paired, NAN, 0.0, 1)
    noise = item_var(float(np.mean(x)), items_a) + item_var(float(np.mean(y)), items_b)
    if paired:
        d = x - y
        n, diff, df = len(d), float(np.mean(d)), len(d) - 1
        se = float(np.std(d, ddof=1) / math.sqrt(n)) if n > 1 else NAN
    else:
        n, diff = min(len(x), len(y)), float(np.mean(x) - np.mean(y))
        se, df = NAN, 1.0
        if n >= 2:
            va, vb = np.var(x, ddof=1) / len(x), np.var(y, ddof=1) / len(y)
            se = float(math.sqrt(va + vb))
            df = float((va + vb) ** 2 / (va * va / (len(x) - 1) + vb * vb / (len(y) - 1))) if va + vb > 0 else len(x) + len(y) - 2.0
    out = Difference(n, diff, NAN, NAN, paired, se, noise, df, tuple(x), tuple(y))
    lo, hi = out.bounds(level) if n >= 2 else (NAN, NAN)
    if items_a is not None and items_b is not None:  # two proportions: their difference lies in [-1, 1]
        lo, hi = max(lo, -1.0), min(hi, 1.0)
    return Difference(n, diff, lo, hi, paired, se, noise, df, tuple(x), tuple(y))


def separated(a: Sequence[float], b: Sequence[float], paired: bool = False, items_a: int | None = None,
              items_b: int | None = None, level: float = CONFIDENCE) -> bool | None:
    """Whether two cells' means differ beyond noise: the interval of a - b at `level` excludes 0 (paired by
    seed, or Welch's).  None when a side has fewer than MIN_DECIDE runs or nothing measures the noise."""
    if len(a) < MIN_DECIDE or len(b) < MIN_DECIDE:
        return None
    d = difference(a, b, paired, items_a, items_b, level)
    if not d.has_interval:
        return None
    return d.lo > 0 or d.hi < 0
