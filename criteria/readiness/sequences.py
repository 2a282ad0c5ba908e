"""One-sided confidence sequences from cumulative statistics, vectorised over the looks.

Each function takes the cumulative statistics at successive looks (count, sum, sum of squares;
or successes and trials) and returns a bound after every look. A one-sided lower bound L_t at
level alpha satisfies P(exists t: value < L_t) <= alpha, and an upper bound likewise, so a PASS
declared when the bound on the good side clears the threshold is wrong with probability at
most alpha however often the bounds are looked at (Howard, Ramdas, McAuliffe & Sekhon 2021,
"Time-uniform, nonparametric, nonasymptotic confidence sequences", Ann. Statist. 49(2)).

- means and differences of means: the asymptotic confidence sequence (AsympCS) of
  Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas (2024), "Time-uniform central limit theory and
  asymptotic confidence sequences", Ann. Statist. 52(6): Robbins' normal-mixture boundary with
  the plug-in standard deviation, in its one-sided form; valid as the sample grows, like a CLT
  interval, and much tighter than bounded-value sequences when the spread is small;
- rates (and quantiles through the indicator X <= T): one-sided beta-mixture martingales
  (Robbins 1970, "Statistical methods related to the law of the iterated logarithm", Ann. Math.
  Statist. 41(5); Howard et al. 2021 §3.2 give the two-sided mixture), exact at every n.

`stats.py` keeps the two-sided, nonasymptotic sequences; these trade nonasymptotic validity
(means) or two-sidedness (rates) for deciding with fewer pairs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize_scalar
from scipy.special import betainc, betaincc, betaln, xlog1py, xlogy
from scipy.stats import binom, norm

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

# Looks with fewer samples get infinite mean bounds: the plug-in standard deviation is too
# noisy below this. Chosen by simulation with a look after every sample: at 30 the false-bound
# rate of either side is 0.041-0.043 for normal values, <= 0.04 for t(3) and about alpha
# (0.050-0.053) for left-skewed Beta(7, 3) scores, which exceed it at 20 (0.056); 50 would
# gain little (Beta(7, 3): 0.046) and, as n_b >= MIN_N gates `difference_bounds`, would
# delay every difference on a 10% subset by about 200 pairs. Strongly skewed values stay
# beyond any such fix on their long-tail side (exponential: 0.10 at 30, 0.09 at 50), but not
# when looked at every 50 pairs (about 0.05): use the rate bounds for 0/1 outcomes.
MIN_N = 30
# The time at which the mean boundary is tightest. The criteria decide after 50 to 500 pairs
# when the candidate is clearly good (tests: 100 to 350); at 200 the boundary is 9% narrower
# at 100 pairs than tuned for 500, and 4.5% wider at 5,000, where a decision has time to spare.
# Tuned for 500, a mean difference of 0 against a margin of 0.03 at sd 0.08 needed 150 pairs
# at the 80th percentile (looks every 50), over three times the 46 of the fixed-n t-test; at
# 200 that scenario passed by 100 pairs in 81 % of 2,000 runs, at 150 in 84 % (the 80th
# percentile no longer on the edge), with sd 0.15 and the false-PASS rate unchanged.
DESIGN_N = 150.0
# Halvings of [0, 1] in the bisection for rate bounds: 2^-60 is below float64's resolution
# near 1 and far below any rate we report.
_BISECTION_STEPS = 60
# Forecasts give up beyond this many samples.
_FORECAST_CAP = 10**9
# Prior of the rate mixtures: Beta(1, 1), uniform on the side of p it is truncated to. It
# makes M_n(p) monotone in p (see `proportion_bounds`) and decided soonest in simulation: at
# the 80th percentile 1,600 pairs for a rate of 0.3% vs <= 1% and 1,200 for 97% vs >= 95%,
# against 1,650 and 1,350 with Jeffreys' Beta(1/2, 1/2); Beta(2, 2) tied, Beta(3, 3) lost.
DEFAULT_PRIOR = (1.0, 1.0)


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


@cache
def _best_x(alpha: float) -> float:
    """x = t rho^2 at which the one-sided boundary multiplier is smallest.

    The multiplier depends on t and rho only through x, so tuning rho for t = design_n is
    rho^2 = x* / design_n. Waudby-Smith et al. (2024, §2) give the closed-form approximate
    minimiser for the two-sided boundary; for the one-sided one the minimum is found
    numerically (at alpha = 0.05 it is x* = 6.99, and their formula at 2 alpha gives 6.33,
    a multiplier 0.03% wider).
    """
    result = minimize_scalar(
        lambda log_x: float(_multiplier_x(np.float64(math.exp(log_x)), alpha)),
        bounds=(-10.0, 10.0),
        method="bounded",
    )
    return math.exp(float(result.x))


def _multiplier_x(x: FloatArray | np.float64, alpha: float) -> FloatArray:
    """sqrt(2 (x + 1) / x * log(1 + sqrt(x + 1) / (2 alpha))), the boundary over sd / sqrt(t).

    Mixing exp(l S_v - l^2 v / 2) over a half-normal l of variance 1/r gives the one-sided
    normal mixture 2 sqrt(r / (v + r)) exp(S^2 / (2 (v + r))) Phi(S / sqrt(v + r)) (Howard et
    al. 2021, §3), whose crossing of 1/alpha is at most sqrt(2 (v + r) log(1 + sqrt((v + r)
    / r) / (2 alpha))), the closed form they give (0.4% wider near the optimum, in exchange
    for no root finding). With v = t (unit variance) and r = 1 / rho^2 this is t times the
    multiplier over sqrt(t): the one-sided form of the Gaussian-mixture AsympCS of
    Waudby-Smith et al. (2024, Theorem 2.2), whose two-sided radius is
    sqrt(2 (t rho^2 + 1) / (t^2 rho^2) log(sqrt(t rho^2 + 1) / alpha)).
    """
    return np.sqrt(2 * (x + 1) / x * np.log1p(np.sqrt(x + 1) / (2 * alpha)))


def boundary_multiplier(t: ArrayLike, alpha: float, design_n: float = DESIGN_N) -> FloatArray:
    """The bound's distance from the estimate in standard errors, at time t (one-sided)."""
    _check_alpha(alpha)
    t = np.asarray(t, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return _multiplier_x(t * (_best_x(alpha) / design_n), alpha)


def mean_bounds(
    n: ArrayLike, total: ArrayLike, total_sq: ArrayLike, alpha: float, design_n: float = DESIGN_N
) -> tuple[FloatArray, FloatArray]:
    """One-sided lower and upper bounds of a mean after each look, from cumulative sums.

    bound = mean -/+ s_t / sqrt(t) * multiplier(t) with the sample sd s_t (Waudby-Smith et al.
    2024, Theorem 2.2, in the one-sided form of `_multiplier_x`), rho tuned for t = design_n.
    Each side holds at level alpha on its own, as the sample grows (a CLT-type guarantee, not
    a finite-sample one); looks with n < MIN_N get -inf / +inf.
    """
    _check_alpha(alpha)
    n = np.asarray(n, dtype=np.float64)
    total = np.asarray(total, dtype=np.float64)
    total_sq = np.asarray(total_sq, dtype=np.float64)
    ready = n >= MIN_N
    safe_n = np.where(ready, n, MIN_N)
    mean = np.where(ready, total / safe_n, 0.0)
    variance = np.maximum(total_sq - total * mean, 0.0) / (safe_n - 1)
    radius = np.sqrt(variance / safe_n) * boundary_multiplier(safe_n, alpha, design_n)
    return (
        np.where(ready, mean - radius, -np.inf),
        np.where(ready, mean + radius, np.inf),
    )


def difference_bounds(
    n_a: ArrayLike,
    sum_a: ArrayLike,
    sq_a: ArrayLike,
    n_b: ArrayLike,
    sum_b: ArrayLike,
    sq_b: ArrayLike,
    alpha: float,
    design_n: float = DESIGN_N,
) -> tuple[FloatArray, FloatArray]:
    """One-sided bounds of mean(A) - mean(B), B observed on a random subset of A's stream.

    The estimate is mean_a - mean_b with standard error sqrt(s_a^2 / n_a + s_b^2 / n_b), and
    the AsympCS boundary is taken at intrinsic time t = n_a: with B a random fraction f of
    the pairs, n_a (estimate - truth) is asymptotically a sum over the n_a pairs of i.i.d.
    influence terms A_i - mu_a - (D_i / f)(B_i - mu_b) (D_i: pair i is in the subset), whose
    variance the standard error times sqrt(n_a) estimates, so Waudby-Smith et al.'s
    argument applies to it as to a mean. The cross term between A and B on the shared pairs
    is not in the sums and is left out: conservative when they correlate positively.
    Infinite while n_a or n_b < MIN_N.
    """
    _check_alpha(alpha)
    n_a = np.asarray(n_a, dtype=np.float64)
    n_b = np.asarray(n_b, dtype=np.float64)
    ready = (n_a >= MIN_N) & (n_b >= MIN_N)
    na = np.where(ready, n_a, MIN_N)
    nb = np.where(ready, n_b, MIN_N)
    sum_a = np.asarray(sum_a, dtype=np.float64)
    sum_b = np.asarray(sum_b, dtype=np.float64)
    mean_a = np.where(ready, sum_a / na, 0.0)
    mean_b = np.where(ready, sum_b / nb, 0.0)
    var_a = np.maximum(np.asarray(sq_a, dtype=np.float64) - sum_a * mean_a, 0.0) / (na - 1)
    var_b = np.maximum(np.asarray(sq_b, dtype=np.float64) - sum_b * mean_b, 0.0) / (nb - 1)
    radius = np.sqrt(var_a / na + var_b / nb) * boundary_multiplier(na, alpha, design_n)
    estimate = mean_a - mean_b
    return (
        np.where(ready, estimate - radius, -np.inf),
        np.where(ready, estimate + radius, np.inf),
    )


def _log_mixture(
    k: FloatArray, n: FloatArray, p: FloatArray, prior: tuple[float, float], below: bool
) -> FloatArray:
    """log M_n(p) of the one-sided beta mixture, over q < p (below) or q > p.

    M_n(p) = int_side L(q) pi(q) dq / (Pi(side) L(p)) with L(q) = q^k (1 - q)^(n - k) and pi
    the Beta(a, b) density: for q < p, B(a + k, b + n - k) I_p(a + k, b + n - k) /
    (B(a, b) I_p(a, b)) / L(p); for q > p the upper tails 1 - I_p. Each likelihood ratio
    L(q) / L(p) with q < p has mean r q / p + (1 - r)(1 - q) / (1 - p) <= 1 per trial under
    any rate r >= p, so the mixture is a nonnegative supermartingale with M_0 = 1 under
    every rate >= p (Robbins 1970 mixes over all q; truncating the prior keeps this), and by
    Ville's inequality P(exists n: M_n(p) >= 1/alpha) <= alpha.
    """
    a, b = prior
    with np.errstate(divide="ignore"):
        if below:
            log_tail = np.log(betainc(a + k, b + n - k, p)) - np.log(betainc(a, b, p))
        else:
            log_tail = np.log(betaincc(a + k, b + n - k, p)) - np.log(betaincc(a, b, p))
    log_likelihood = xlogy(k, p) + xlog1py(n - k, -p)
    return betaln(a + k, b + n - k) - betaln(a, b) + log_tail - log_likelihood  # type: ignore[no-any-return]


def _counts(k: ArrayLike, n: ArrayLike) -> tuple[FloatArray, FloatArray]:
    k, n = np.broadcast_arrays(np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64))
    if np.any((k < 0) | (k > n)):
        raise ValueError("successes must lie in [0, trials]")
    return k, n


def proportion_bounds(
    k: ArrayLike, n: ArrayLike, alpha: float, prior: tuple[float, float] = DEFAULT_PRIOR
) -> tuple[FloatArray, FloatArray]:
    """Exact one-sided lower and upper bounds of a rate after each look (k successes in n).

    The upper bound is sup {p : M_n(p) < 1/alpha} for the mixture over q < p (`_log_mixture`),
    found by bisection on [k/n, 1] for all looks at once (M_n(k/n) <= 1); the lower bound
    mirrors it. With the uniform prior, M_n(p) = E_u[L(pu) / L(p)] over u ~ U(0, 1), and
    L(pu) / L(p) = u^k ((1 - pu) / (1 - p))^(n - k) increases with p for every u, so the
    rejected rates form an interval [high, 1] and the bisection finds its end exactly (other
    priors: checked on a grid in the tests). n = 0 gives [0, 1].
    """
    _check_alpha(alpha)
    k, n = _counts(k, n)
    level = math.log(1 / alpha)
    rate = np.divide(k, n, out=np.zeros_like(k), where=n > 0)
    empty = n == 0

    def bisect(start: FloatArray, stop: FloatArray, below: bool) -> FloatArray:
        # invariant: `accepted` is not rejected, `rejected` is (or is the end of [0, 1])
        accepted, rejected = start.copy(), stop.copy()
        for _ in range(_BISECTION_STEPS):
            middle = (accepted + rejected) / 2
            out = _log_mixture(k, n, middle, prior, below) >= level
            accepted = np.where(out, accepted, middle)
            rejected = np.where(out, middle, rejected)
        return rejected

    high = bisect(rate, np.ones_like(rate), below=True)
    low = bisect(rate, np.zeros_like(rate), below=False)
    # with no failures (successes) nothing is evidence against a rate of 1 (0)
    high = np.where(empty | (k == n), 1.0, high)
    low = np.where(empty | (k == 0), 0.0, low)
    return low, high


def proportion_rejects_above(
    k: ArrayLike, n: ArrayLike, p0: float, alpha: float, prior: tuple[float, float] = DEFAULT_PRIOR
) -> BoolArray:
    """Whether the rate is established to be below p0 (every rate >= p0 rejected) at each look."""
    _check_alpha(alpha)
    k, n = _counts(k, n)
    if p0 <= 0:
        return np.zeros(k.shape, dtype=np.bool_)
    if p0 >= 1:
        return k < n
    p = np.full_like(k, p0)
    return _log_mixture(k, n, p, prior, below=True) >= math.log(1 / alpha)


def proportion_rejects_below(
    k: ArrayLike, n: ArrayLike, p0: float, alpha: float, prior: tuple[float, float] = DEFAULT_PRIOR
) -> BoolArray:
    """Whether the rate is established to be above p0 (every rate <= p0 rejected) at each look."""
    _check_alpha(alpha)
    k, n = _counts(k, n)
    if p0 >= 1:
        return np.zeros(k.shape, dtype=np.bool_)
    if p0 <= 0:
        return k > 0
    p = np.full_like(k, p0)
    return _log_mixture(k, n, p, prior, below=False) >= math.log(1 / alpha)


def running(low: ArrayLike, high: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """The running intersection of the bounds along the last axis (the looks): never widens.

    A confidence sequence covers at every look at once, so the intersection over the looks
    so far covers whenever all of them do: it is valid with the same alpha.
    """
    return (
        np.maximum.accumulate(np.asarray(low, dtype=np.float64), axis=-1),
        np.minimum.accumulate(np.asarray(high, dtype=np.float64), axis=-1),
    )


def _smallest(decided: Callable[[int], bool], start: int) -> int | None:
    """The smallest n >= start with decided(n), by doubling then bisection; None beyond the cap."""
    if decided(start):
        return start
    low, high = start, 2 * start
    while not decided(high):
        low, high = high, 2 * high
        if high > _FORECAST_CAP:
            return None
    while high - low > 1:
        middle = (low + high) // 2
        if decided(middle):
            high = middle
        else:
            low = middle
    return high


def mean_needed(
    sd: float, gap: float, alpha: float, design_n: float = DESIGN_N, power: float = 0.8
) -> int | None:
    """Samples until `mean_bounds` clears a threshold `gap` from the true mean, w.p. `power`.

    The smallest n >= MIN_N with gap sqrt(n) / sd >= multiplier(n) + z_power: the normal
    approximation at a single look (earlier looks only help); None when gap <= 0 or beyond
    10^9.
    """
    _check_alpha(alpha)
    if not gap > 0:
        return None
    if sd <= 0:
        return MIN_N
    z = float(norm.ppf(power))

    def decided(m: int) -> bool:
        needed = float(boundary_multiplier(np.float64(m), alpha, design_n)) + z
        return gap * math.sqrt(m) / sd >= needed

    return _smallest(decided, MIN_N)


def proportion_needed(
    p_true: float,
    p0: float,
    alpha: float,
    power: float = 0.8,
    prior: tuple[float, float] = DEFAULT_PRIOR,
) -> int | None:
    """Trials until the exact rate bound clears p0 with probability `power`, at rate p_true.

    Exact at a single look: the test rejects for few enough (many enough) successes, so it
    rejects with probability >= power at n exactly when it rejects at the `power` quantile
    of Binomial(n, p_true) (the 1 - power quantile when p_true > p0); n is then found by
    doubling and bisection. None when p_true == p0 or beyond 10^9.
    """
    _check_alpha(alpha)
    if p_true == p0 or not 0 <= p_true <= 1:
        return None
    below = p_true < p0

    def decided(m: int) -> bool:
        if below:
            k = float(binom.ppf(power, m, p_true))
            return bool(proportion_rejects_above(k, m, p0, alpha, prior))
        k = float(binom.ppf(1 - power, m, p_true))
        return bool(proportion_rejects_below(k, m, p0, alpha, prior))

    return _smallest(decided, 1)
