"""Always-valid confidence sequences: intervals that may be looked at after every request.

A confidence sequence (C_t) covers the true value at *every* t at once with probability at
least 1 - alpha, so checking the verdict continuously and stopping when it looks good does not
inflate the chance of a wrong GO (Howard, Ramdas, McAuliffe & Sekhon 2021, "Time-uniform,
nonparametric, nonasymptotic confidence sequences", Ann. Statist. 49(2)).

No well-kept Python library offers these for our Python: `confseq` (Howard & Waudby-Smith)
does not build here and `expectation` needs Python >= 3.12; scipy and statsmodels only have
fixed-n intervals. So the two constructions below are written out, each next to its reference:

- proportions (and quantiles, through the indicator X <= T): the beta-binomial mixture
  martingale (Robbins 1970; Howard et al. 2021, §3.2), exact for Bernoulli data and therefore
  valid near rates of 0 and 1, where normal approximations fail;
- means of bounded values: the predictable plug-in empirical-Bernstein confidence sequence
  (Waudby-Smith & Ramdas 2024, "Estimating means of bounded random variables by betting",
  JRSS-B 86(1), Theorem 2 / eq. (13)), which adapts to the variance.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import brentq
from scipy.special import betaln

# Prior Beta(1/2, 1/2) of the mixture: Jeffreys, symmetric, puts weight near 0 and 1.
_PRIOR_A = 0.5
_PRIOR_B = 0.5
# Truncation of the betting fractions in PrPl-EB (the paper uses 1/2 or 3/4).
_LAMBDA_MAX = 0.5

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Interval:
    """A confidence interval at the current sample size (bounds may be infinite)."""

    estimate: float
    low: float
    high: float
    n: int


def log_mixture(k: NDArray[np.float64] | float, n: int, p: float) -> NDArray[np.float64] | float:
    """log M_n(p): the beta-binomial mixture martingale for k successes in n trials.

    M_n(p) = B(a + k, b + n - k) / B(a, b) / (p^k (1 - p)^(n - k)) is a nonnegative
    martingale with M_0 = 1 when the true rate is p, so by Ville's inequality
    P(exists n: M_n(p) >= 1/alpha) <= alpha. {p : M_n(p) < 1/alpha} is the confidence sequence.
    """
    k = np.asarray(k, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_likelihood = np.where(k > 0, k * np.log(p), 0.0) + np.where(
            n - k > 0, (n - k) * np.log1p(-p), 0.0
        )
    return betaln(_PRIOR_A + k, _PRIOR_B + n - k) - betaln(_PRIOR_A, _PRIOR_B) - log_likelihood  # type: ignore[no-any-return]


def proportion_rejects(k: int, n: int, p: float, alpha: float) -> bool:
    """Whether the rate p is outside the confidence sequence after k successes in n."""
    if p <= 0:
        return k > 0
    if p >= 1:
        return k < n
    return float(log_mixture(k, n, p)) >= math.log(1 / alpha)


def proportion_interval(k: int, n: int, alpha: float) -> Interval:
    """The confidence sequence for a rate, at k successes in n trials."""
    if n == 0:
        return Interval(math.nan, 0.0, 1.0, 0)
    estimate = k / n
    level = math.log(1 / alpha)

    def excess(p: float) -> float:
        return float(log_mixture(k, n, p)) - level

    low = 0.0
    if k > 0 and excess(1e-15) > 0:
        low = brentq(excess, 1e-15, estimate) if estimate < 1 else brentq(excess, 1e-15, 1 - 1e-15)
    high = 1.0
    if k < n and excess(1 - 1e-15) > 0:
        high = brentq(excess, max(estimate, 1e-15), 1 - 1e-15)
    return Interval(estimate, float(low), float(high), n)


def mean_interval_path(x: FloatArray, alpha: float) -> tuple[FloatArray, FloatArray]:
    """PrPl-EB bounds after each observation, for values already scaled to [0, 1].

    With mu_t = (1/2 + sum x_i) / (t + 1), sigma2_t = (1/4 + sum (x_i - mu_i)^2) / (t + 1),
    lambda_t = min(sqrt(2 log(2/alpha) / (sigma2_{t-1} t log(1 + t))), 1/2),
    v_t = 4 (x_t - mu_{t-1})^2 and psi(l) = (-log(1 - l) - l) / 4, the interval at t is
    sum(lambda x) / sum(lambda) -/+ (log(2/alpha) + sum(v psi(lambda))) / sum(lambda).
    """
    n = len(x)
    t = np.arange(1, n + 1, dtype=np.float64)
    mu = (0.5 + np.cumsum(x)) / (t + 1)
    sigma2 = (0.25 + np.cumsum((x - mu) ** 2)) / (t + 1)
    mu_prev = np.concatenate(([0.5], mu[:-1]))
    sigma2_prev = np.concatenate(([0.25], sigma2[:-1]))
    log_term = math.log(2 / alpha)
    lam = np.minimum(np.sqrt(2 * log_term / (sigma2_prev * t * np.log1p(t))), _LAMBDA_MAX)
    v = 4 * (x - mu_prev) ** 2
    psi = (-np.log1p(-lam) - lam) / 4
    weight = np.cumsum(lam)
    centre = np.cumsum(lam * x) / weight
    radius = (log_term + np.cumsum(v * psi)) / weight
    return centre - radius, centre + radius


def mean_interval(values: FloatArray, low: float, high: float, alpha: float) -> Interval:
    """The confidence sequence for the mean of values in [low, high], in arrival order.

    The running intersection of the bounds is reported: it is as valid and never widens.
    """
    n = len(values)
    if n == 0:
        return Interval(math.nan, low, high, 0)
    span = high - low
    scaled = np.clip((values - low) / span, 0.0, 1.0)
    lower, upper = mean_interval_path(scaled, alpha)
    lo = max(float(np.max(lower)), 0.0)
    hi = min(float(np.min(upper)), 1.0)
    lo = min(lo, hi)
    return Interval(float(np.mean(values)), low + lo * span, low + hi * span, n)


@dataclass(frozen=True)
class Blocks:
    """Consecutive blocks of samples in arrival order: each block's count, sum, sum of squares."""

    n: FloatArray
    total: FloatArray
    total_sq: FloatArray

    @classmethod
    def of(cls, values: FloatArray) -> Blocks:
        """One block per sample."""
        values = np.asarray(values, dtype=np.float64)
        return cls(np.ones(len(values)), values, values * values)

    @property
    def count(self) -> int:
        """How many samples the blocks hold."""
        return int(self.n.sum())


def mean_interval_blocks(blocks: Blocks, low: float, high: float, alpha: float) -> Interval:
    """PrPl-EB over blocks whose plug-ins are updated between blocks, not within them.

    The mean, variance and betting fraction of block j are computed from the blocks before
    it, exactly as `mean_interval_path` computes them for one sample from the samples before
    it; so they are predictable and Waudby-Smith & Ramdas' supermartingale (and with it the
    confidence sequence's time-uniform coverage) holds as it is. Within a block the sums
    over its samples only need the block's count, sum and sum of squares, which is what
    lets the verdict be computed from stored aggregates. Blocks of one sample give
    `mean_interval` without the clipping (values are trusted to lie in [low, high]).
    """
    total = float(blocks.n.sum())
    if total == 0:
        return Interval(math.nan, low, high, 0)
    keep = blocks.n > 0
    span = high - low
    n = blocks.n[keep]
    s = (blocks.total[keep] - n * low) / span
    q = (blocks.total_sq[keep] - 2 * low * blocks.total[keep] + n * low * low) / (span * span)
    before = np.concatenate(([0.0], np.cumsum(n)[:-1]))
    mu = (0.5 + np.cumsum(s)) / (np.cumsum(n) + 1)
    mu_prev = np.concatenate(([0.5], mu[:-1]))
    # sum over the block of (x - mu after the block)^2, as sigma2 uses (x_t - mu_t)^2
    spread = np.maximum(q - 2 * mu * s + n * mu * mu, 0.0)
    sigma2 = (0.25 + np.cumsum(spread)) / (np.cumsum(n) + 1)
    sigma2_prev = np.concatenate(([0.25], sigma2[:-1]))
    t = before + 1
    log_term = math.log(2 / alpha)
    lam = np.minimum(np.sqrt(2 * log_term / (sigma2_prev * t * np.log1p(t))), _LAMBDA_MAX)
    v = 4 * np.maximum(q - 2 * mu_prev * s + n * mu_prev * mu_prev, 0.0)
    psi = (-np.log1p(-lam) - lam) / 4
    weight = np.cumsum(lam * n)
    centre = np.cumsum(lam * s) / weight
    radius = (log_term + np.cumsum(v * psi)) / weight
    lo = max(float(np.max(centre - radius)), 0.0)
    hi = min(float(np.min(centre + radius)), 1.0)
    lo = min(lo, hi)
    estimate = float(blocks.total[keep].sum()) / total
    return Interval(estimate, low + lo * span, low + hi * span, int(total))


def quantile_ranks(n: int, q: float, alpha: float) -> tuple[int | None, int | None, int]:
    """1-based ranks of the order statistics that end the q-quantile's interval, and its estimate.

    The quantile is above v when P(X <= v) < q is established and at most v when
    P(X <= v) >= q is; over the order statistics this gives the interval's ends (None: the
    end is unbounded).
    """
    level = math.log(1 / alpha)
    # The ends lie within a few sqrt(n log n) of qn; when the window's own ends are rejected,
    # the largest rejected k below qn and the smallest above are inside it, so looking only
    # there gives the same ranks as looking at every k, in O(sqrt n) instead of O(n).
    half = 4 * math.sqrt(n * (level + math.log(n + 1))) + 100
    first, last = max(0, math.floor(q * n - half)), min(n, math.ceil(q * n + half))
    k = np.arange(first, last + 1, dtype=np.float64)
    rejected = np.asarray(log_mixture(k, n, q)) >= level
    if (first > 0 and not rejected[0]) or (last < n and not rejected[-1]):
        k = np.arange(0, n + 1, dtype=np.float64)
        rejected = np.asarray(log_mixture(k, n, q)) >= level
        first = 0
    below = np.nonzero(rejected & (k / n < q) & (k >= 1))[0]
    above = np.nonzero(rejected & (k / n > q) & (k >= 1))[0]
    low = first + int(below.max()) if below.size else None
    high = first + int(above.min()) if above.size else None
    return low, high, max(1, math.ceil(q * n))


def quantile_interval(values: FloatArray, q: float, alpha: float) -> Interval:
    """The confidence sequence for the q-quantile, by inverting the one for P(X <= v)."""
    n = len(values)
    if n == 0:
        return Interval(math.nan, -math.inf, math.inf, 0)
    ordered = np.sort(values)
    low, high, estimate = quantile_ranks(n, q, alpha)
    return Interval(
        float(ordered[estimate - 1]),
        float(ordered[low - 1]) if low is not None else -math.inf,
        float(ordered[high - 1]) if high is not None else math.inf,
        n,
    )


def _smallest(n: int, decided: Callable[[int], bool], cap: int) -> int | None:
    """The smallest m >= n with decided(m), by doubling then bisection; None beyond cap."""
    if decided(n):
        return n
    high = max(2 * n, n + 1)
    while not decided(high):
        high *= 2
        if high > cap:
            return None
    low = n
    while high - low > max(1, low // 100):
        middle = (low + high) // 2
        if decided(middle):
            high = middle
        else:
            low = middle
    return high


def proportion_samples_needed(
    k: int, n: int, threshold: float, alpha: float, cap: int = 10**8
) -> int | None:
    """Roughly how many trials in total until the rate is decided against `threshold`.

    Assumes the observed rate k/n stays; None when it sits on the threshold.
    """
    if n == 0 or k / n == threshold:
        return None
    rate = k / n
    return _smallest(n, lambda m: proportion_rejects(round(rate * m), m, threshold, alpha), cap)


def mean_samples_needed(
    values: FloatArray, low: float, high: float, threshold: float, alpha: float, cap: int = 10**8
) -> int | None:
    """Roughly how many values in total until the PrPl-EB interval clears `threshold`."""
    if len(values) == 0:
        return None
    span = high - low
    scaled = np.clip((values - low) / span, 0.0, 1.0)
    return _mean_needed(
        len(values), float(scaled.mean()), float(scaled.var()), (threshold - low) / span, alpha, cap
    )


def mean_samples_needed_blocks(
    blocks: Blocks, low: float, high: float, threshold: float, alpha: float, cap: int = 10**8
) -> int | None:
    """`mean_samples_needed` from the blocks' sums (values trusted to lie in [low, high])."""
    n = blocks.count
    if n == 0:
        return None
    span = high - low
    mean = float(blocks.total.sum()) / n
    variance = max(float(blocks.total_sq.sum()) / n - mean * mean, 0.0) / (span * span)
    return _mean_needed(n, (mean - low) / span, variance, (threshold - low) / span, alpha, cap)


def _mean_needed(
    n: int, mean: float, variance: float, threshold: float, alpha: float, cap: int
) -> int | None:
    """Samples until the interval clears `threshold`, for scaled mean and variance held fixed.

    At m samples, lambda = min(sqrt(2 log(2/alpha) / (var m log(1 + m))), 1/2) and the radius
    is (log(2/alpha) + m 4 var psi(lambda)) / (m lambda), in units of the [low, high] range.
    """
    gap = abs(mean - threshold)
    if gap == 0:
        return None
    variance = max(variance, 1e-6)
    log_term = math.log(2 / alpha)

    def decided(m: int) -> bool:
        lam = min(math.sqrt(2 * log_term / (variance * m * math.log1p(m))), _LAMBDA_MAX)
        psi = (-math.log1p(-lam) - lam) / 4
        return (log_term + m * 4 * variance * psi) / (m * lam) < gap

    return _smallest(n, decided, cap)
