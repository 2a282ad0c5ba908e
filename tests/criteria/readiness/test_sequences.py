"""The one-sided confidence sequences: valid however often one looks, and quick to decide.

Simulations look every 50 samples up to 5,000. Validity: with the true value exactly at the
threshold, the running bound on the good side must clear it (a false PASS) in at most alpha of
the runs. Efficiency: for a clearly good candidate, the 80th percentile of the pairs needed to
PASS must be at most three times the fixed-n one-sided test with 80% power (t-test for means,
exact binomial test for rates), which is computed here rather than taken on trust.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import binom, nct, norm
from scipy.stats import t as student_t

from criteria.readiness.sequences import (
    MIN_N,
    _log_mixture,
    difference_bounds,
    mean_bounds,
    mean_needed,
    proportion_bounds,
    proportion_needed,
    proportion_rejects_above,
    proportion_rejects_below,
    running,
)

ALPHA = 0.05
STEP = 50
HORIZON = 5000
POWER = 0.8


def _looks(x: np.ndarray, step: int = STEP) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative sums and sums of squares of each run's values after every `step` of them."""
    blocks = x.reshape(x.shape[0], -1, step)
    return np.cumsum(blocks.sum(axis=2), axis=1), np.cumsum((blocks**2).sum(axis=2), axis=1)


def _counts(runs: int, looks: int, step: int = STEP) -> np.ndarray:
    return np.broadcast_to(np.arange(1, looks + 1) * float(step), (runs, looks))


def _pairs_to_pass(passed: np.ndarray, step: int = STEP) -> np.ndarray:
    """Per run, the sample size at the first look that PASSed (inf if none did)."""
    first = np.argmax(passed, axis=1).astype(np.float64)
    first[~passed.any(axis=1)] = np.inf
    return np.asarray((first + 1) * step, dtype=np.float64)


def _percentile(pairs: np.ndarray, q: float) -> float:
    return float(np.quantile(pairs, q, method="inverted_cdf"))


def _t_test_n(gap: float, sd: float) -> int:
    """Smallest n at which the one-sided one-sample t-test at ALPHA has power POWER."""
    n = np.arange(2, 100_000)
    power = nct.sf(student_t.ppf(1 - ALPHA, n - 1), n - 1, gap / sd * np.sqrt(n))
    return int(n[np.argmax(power >= POWER)])


def _binomial_test_n(p_true: float, p0: float) -> int:
    """Smallest n at which the exact one-sided binomial test at ALPHA has power POWER."""
    n = np.arange(1, 20_000)
    if p_true < p0:  # reject "rate >= p0" for k <= c, the largest c with P_p0(K <= c) <= ALPHA
        guess = binom.ppf(ALPHA, n, p0)
        c = np.where(binom.cdf(guess, n, p0) > ALPHA, guess - 1, guess)
        power = np.asarray(np.where(c >= 0, binom.cdf(c, n, p_true), 0.0))
    else:  # reject "rate <= p0" for k > c, the smallest c with P_p0(K > c) <= ALPHA
        guess = binom.isf(ALPHA, n, p0)
        c = np.where(binom.sf(guess, n, p0) > ALPHA, guess + 1, guess)
        power = np.asarray(binom.sf(c, n, p_true))
    return int(n[np.argmax(power >= POWER)])


def _mean_pairs(mu: float, sd: float, threshold: float, runs: int, seed: int) -> np.ndarray:
    """Pairs until the running lower bound of a normal mean exceeds `threshold`, per run."""
    rng = np.random.default_rng(seed)
    total, total_sq = _looks(rng.normal(mu, sd, size=(runs, HORIZON)))
    low, _ = running(*mean_bounds(_counts(runs, HORIZON // STEP), total, total_sq, ALPHA))
    return _pairs_to_pass(low > threshold)


def _difference_pairs(
    mu_a: float, mu_b: float, sd: float, fraction: float, threshold: float, runs: int, seed: int
) -> np.ndarray:
    """Pairs until the running lower bound of mean(A) - mean(B) exceeds `threshold`.

    A is seen on every pair, B (noise re-asks, independent of A) on a random `fraction`.
    """
    rng = np.random.default_rng(seed)
    a = rng.normal(mu_a, sd, size=(runs, HORIZON))
    asked = rng.random((runs, HORIZON)) < fraction
    b = np.where(asked, rng.normal(mu_b, sd, size=(runs, HORIZON)), 0.0)
    sum_a, sq_a = _looks(a)
    sum_b, sq_b = _looks(b)
    n_b, _ = _looks(asked.astype(np.float64))
    n_a = _counts(runs, HORIZON // STEP)
    low, _ = running(*difference_bounds(n_a, sum_a, sq_a, n_b, sum_b, sq_b, ALPHA))
    return _pairs_to_pass(low > threshold)


def _successes(p: float, runs: int, horizon: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    k = np.cumsum(rng.binomial(STEP, p, size=(runs, horizon // STEP)), axis=1).astype(float)
    return k, _counts(runs, horizon // STEP).copy()


def _rate_pairs(p: float, p0: float, below: bool, runs: int, horizon: int, seed: int) -> np.ndarray:
    """Pairs until the running bound on the good side of the rate clears p0, per run.

    PASS is "rate < p0" (upper bound below p0) when `below`, else "rate > p0".
    """
    k, n = _successes(p, runs, horizon, seed)
    low, high = running(*proportion_bounds(k, n, ALPHA))
    passed = high < p0 if below else low > p0
    # the decision engine may test at p0 directly: the same verdict, without bisection
    rejects = proportion_rejects_above if below else proportion_rejects_below
    assert np.array_equal(np.maximum.accumulate(rejects(k, n, p0, ALPHA), axis=1), passed)
    return _pairs_to_pass(passed)


# --- validity: a true value exactly at the threshold rarely gets a PASS ---------------------


def test_mean_at_the_threshold_rarely_passes():
    pairs = _mean_pairs(-0.03, 0.08, -0.03, runs=2000, seed=101)
    assert np.isfinite(pairs).mean() <= ALPHA  # measured 0.022


def test_mean_upper_bound_is_valid_too():
    rng = np.random.default_rng(102)
    total, total_sq = _looks(rng.normal(0.8, 0.15, size=(2000, HORIZON)))
    _, high = running(*mean_bounds(_counts(2000, HORIZON // STEP), total, total_sq, ALPHA))
    assert (high < 0.8).any(axis=1).mean() <= ALPHA


def test_difference_at_the_threshold_rarely_passes():
    # A - B is exactly -0.03; B is re-asked on 10% of the pairs
    pairs = _difference_pairs(-0.01, 0.02, 0.08, 0.10, -0.03, runs=2000, seed=103)
    assert np.isfinite(pairs).mean() <= ALPHA  # measured 0.022


def test_rate_at_the_threshold_rarely_passes():
    pairs = _rate_pairs(0.01, 0.01, True, runs=500, horizon=HORIZON, seed=104)
    assert np.isfinite(pairs).mean() <= ALPHA  # measured 0.016


def test_quantile_as_a_rate_at_the_threshold_rarely_passes():
    # P(X <= T) = 0.95 exactly, checked against "P(X <= T) >= 0.95", i.e. p95 <= T
    pairs = _rate_pairs(0.95, 0.95, False, runs=500, horizon=HORIZON, seed=105)
    assert np.isfinite(pairs).mean() <= ALPHA  # measured 0.032


# --- efficiency: a clearly good candidate PASSes within 3x the fixed-n test -------------------


@pytest.mark.parametrize(
    ("mu", "sd", "threshold", "fixed_n"),
    [
        (0.0, 0.08, -0.03, 46),  # (a) difference 0 vs margin 0.03
        (0.0, 0.15, -0.03, 156),  # (a') the same, noisier
        (0.85, 0.15, 0.80, 58),  # (b) mean 0.85 vs >= 0.80
    ],
    ids=["a", "a-prime", "b"],
)
def test_a_good_mean_passes_within_three_times_the_fixed_n_test(mu, sd, threshold, fixed_n):
    assert _t_test_n(mu - threshold, sd) == fixed_n
    pairs = _mean_pairs(mu, sd, threshold, runs=2000, seed=201)
    # measured: (a) 100, (a') 350, (b) 150
    assert _percentile(pairs, 0.8) <= 3 * fixed_n


@pytest.mark.parametrize(
    ("p", "p0", "horizon", "fixed_n"),
    [
        (0.003, 0.01, HORIZON, 913),  # (c) error rate vs <= 1%
        (0.97, 0.95, HORIZON, 601),  # (d) P(X <= T) vs >= 0.95
        (0.90, 0.80, 1000, 82),  # (e) rate vs >= 0.8
    ],
    ids=["c", "d", "e"],
)
def test_a_good_rate_passes_within_three_times_the_fixed_n_test(p, p0, horizon, fixed_n):
    assert _binomial_test_n(p, p0) == fixed_n
    pairs = _rate_pairs(p, p0, p < p0, runs=400, horizon=horizon, seed=202)
    # measured: (c) 1600, (d) 1300, (e) 200
    assert _percentile(pairs, 0.8) <= 3 * fixed_n


def test_a_good_difference_passes():
    # A - B = 0 against a margin of 0.03 with B on 10% of the pairs: the standard error is
    # as for one sample of sd sqrt(0.08^2 + 0.08^2 / 0.1) = 0.265
    pairs = _difference_pairs(0.02, 0.02, 0.08, 0.10, -0.03, runs=1000, seed=203)
    sd = math.sqrt(0.08**2 + 0.08**2 / 0.1)
    fixed_n = math.ceil(((norm.ppf(1 - ALPHA) + norm.ppf(POWER)) * sd / 0.03) ** 2)  # 484
    forecast = mean_needed(sd, 0.03, ALPHA, power=POWER)
    assert forecast is not None
    # measured 1000; forecast 1108
    assert _percentile(pairs, 0.8) <= min(3 * fixed_n, 1.5 * forecast)


# --- running intersection -------------------------------------------------------------------


def test_the_running_intersection_never_widens():
    rng = np.random.default_rng(301)
    total, total_sq = _looks(rng.normal(0.0, 1.0, size=(50, 1000)), step=10)
    low, high = mean_bounds(_counts(50, 100, step=10), total, total_sq, ALPHA)
    run_low, run_high = running(low, high)
    # compared rather than differenced: the first looks are infinite
    assert np.all(run_low[:, 1:] >= run_low[:, :-1])
    assert np.all(run_high[:, 1:] <= run_high[:, :-1])
    assert np.all(run_low >= low)
    assert np.all(run_high <= high)
    # the first looks are below MIN_N: unbounded until then
    assert np.isneginf(run_low[:, 0]).all()
    assert np.isposinf(run_high[:, 0]).all()
    k = np.cumsum(rng.random(200) < 0.3).astype(float)
    p_low, p_high = running(*proportion_bounds(k, np.arange(1.0, 201.0), ALPHA))
    assert np.all(np.diff(p_low) >= 0)
    assert np.all(np.diff(p_high) <= 0)


# --- forecasts --------------------------------------------------------------------------------


def test_the_mean_forecast_matches_the_simulated_pairs():
    # scenario (a) looked at after every pair, as the forecast assumes, and every 50
    rng = np.random.default_rng(401)
    runs, horizon = 2000, 500
    total, total_sq = _looks(rng.normal(0.0, 0.08, size=(runs, horizon)), step=1)
    low, _ = running(*mean_bounds(_counts(runs, horizon, step=1), total, total_sq, ALPHA))
    pairs = _pairs_to_pass(low > -0.03, step=1)
    median = mean_needed(0.08, 0.03, ALPHA, power=0.5)
    likely = mean_needed(0.08, 0.03, ALPHA, power=0.8)
    assert median is not None
    assert likely is not None
    assert 1 / 1.5 <= median / _percentile(pairs, 0.5) <= 1.5  # 62 vs 56
    assert 1 / 1.5 <= likely / _percentile(pairs, 0.8) <= 1.5  # 96 vs 87
    every_50 = _mean_pairs(0.0, 0.08, -0.03, runs=1000, seed=402)
    assert 1 / 1.5 <= likely / _percentile(every_50, 0.8) <= 1.5  # 96 vs 100


def test_the_rate_forecast_matches_the_simulated_pairs():
    pairs = _rate_pairs(0.003, 0.01, True, runs=400, horizon=HORIZON, seed=403)
    median = proportion_needed(0.003, 0.01, ALPHA, power=0.5)
    likely = proportion_needed(0.003, 0.01, ALPHA, power=0.8)
    assert median is not None
    assert likely is not None
    assert 1 / 1.5 <= median / _percentile(pairs, 0.5) <= 1.5  # 1065 vs 900
    assert 1 / 1.5 <= likely / _percentile(pairs, 0.8) <= 1.5  # 1722 vs 1600


def test_forecasts_give_up_when_the_candidate_is_not_better():
    assert mean_needed(0.08, 0.0, ALPHA) is None
    assert mean_needed(0.08, -0.01, ALPHA) is None
    assert mean_needed(0.08, 1e-9, ALPHA) is None  # beyond 10^9 pairs
    assert mean_needed(0.0, 0.01, ALPHA) == MIN_N
    assert proportion_needed(0.01, 0.01, ALPHA) is None
    low, high = mean_needed(0.08, 0.03, ALPHA, power=0.5), mean_needed(0.08, 0.03, ALPHA)
    assert low is not None
    assert high is not None
    assert MIN_N <= low < high
    above = proportion_needed(0.9, 0.8, ALPHA)
    assert above is not None
    assert 82 < above < 3 * 82


# --- the bounds themselves --------------------------------------------------------------------


def test_mean_bounds_follow_the_boundary_formula():
    n, mean, sd = 400.0, 0.1, 0.2
    total, total_sq = n * mean, (n - 1) * sd**2 + n * mean**2
    low, high = mean_bounds(np.array([n]), np.array([total]), np.array([total_sq]), ALPHA, 500.0)

    # rho^2 minimising the multiplier at t = 500, found here independently by brentq on the
    # derivative of log multiplier^2 in x = t rho^2
    def slope(log_x: float) -> float:
        x = math.exp(log_x)
        inner = math.sqrt(x + 1) / (2 * ALPHA)
        return -1 / (x + 1) + x / (2 * (x + 1) * (1 + inner)) * inner / math.log1p(inner)

    rho2 = math.exp(brentq(slope, -5, 5)) / 500
    radius = sd * math.sqrt(
        2 * (n * rho2 + 1) / (n * n * rho2) * math.log(1 + math.sqrt(n * rho2 + 1) / (2 * ALPHA))
    )
    assert low[0] == pytest.approx(mean - radius, rel=1e-6)
    assert high[0] == pytest.approx(mean + radius, rel=1e-6)


def test_mean_and_difference_bounds_are_infinite_below_min_n():
    n = np.array([MIN_N - 1.0, MIN_N])
    low, high = mean_bounds(n, n * 0.5, n * 0.5, ALPHA)
    assert np.isneginf(low[0])
    assert np.isposinf(high[0])
    assert np.isfinite(low[1])
    n_a = np.array([1000.0, 1000.0, MIN_N - 1.0])
    n_b = np.array([MIN_N - 1.0, MIN_N, MIN_N])
    low, high = difference_bounds(n_a, n_a * 0.3, n_a * 0.2, n_b, n_b * 0.1, n_b * 0.05, ALPHA)
    assert np.isneginf(low[[0, 2]]).all()
    assert np.isposinf(high[[0, 2]]).all()
    assert np.isfinite(low[1])
    assert low[1] < 0.2 < high[1]


def test_difference_bounds_use_both_standard_errors():
    n_a, n_b = np.array([2000.0]), np.array([100.0])
    sd_a, sd_b = 0.1, 0.3
    sum_a, sum_b = n_a * 0.5, n_b * 0.1
    sq_a, sq_b = (n_a - 1) * sd_a**2 + n_a * 0.25, (n_b - 1) * sd_b**2 + n_b * 0.01
    low, high = difference_bounds(n_a, sum_a, sq_a, n_b, sum_b, sq_b, ALPHA)
    # the same as a mean over n_a samples whose sd makes the same standard error
    sd = math.sqrt(n_a[0] * (sd_a**2 / n_a[0] + sd_b**2 / n_b[0]))
    m_low, m_high = mean_bounds(n_a, n_a * 0.4, (n_a - 1) * sd**2 + n_a * 0.16, ALPHA)
    assert low == pytest.approx(m_low)
    assert high == pytest.approx(m_high)


def test_rate_bounds_at_the_edges():
    low, high = proportion_bounds([0, 0, 5, 10], [0, 10, 10, 10], ALPHA)
    assert (low[0], high[0]) == (0.0, 1.0)
    assert low[1] == 0.0
    assert 0 < high[1] < 1
    assert 0 < low[2] < 0.5 < high[2] < 1
    assert 0 < low[3] < 1
    assert high[3] == 1.0
    assert not proportion_rejects_above(0, 0, 0.5, ALPHA)
    assert proportion_rejects_above([0, 1], [1, 1], 1.0, ALPHA).tolist() == [True, False]
    assert not proportion_rejects_above(0, 100, 0.0, ALPHA)
    assert proportion_rejects_below([0, 1], [1, 1], 0.0, ALPHA).tolist() == [False, True]
    assert not proportion_rejects_below(100, 100, 1.0, ALPHA)
    with pytest.raises(ValueError, match="successes"):
        proportion_bounds([3], [2], ALPHA)
    with pytest.raises(ValueError, match="alpha"):
        proportion_bounds([1], [2], 0.0)


@pytest.mark.parametrize("prior", [(1.0, 1.0), (0.5, 0.5), (2.0, 3.0)])
def test_rate_bounds_are_where_the_mixture_crosses_one_over_alpha(prior):
    k = np.array([0.0, 1.0, 3.0, 30.0, 500.0, 9990.0, 19999.0])
    n = np.array([10.0, 10.0, 1000.0, 1000.0, 1000.0, 10000.0, 20000.0])
    level = math.log(1 / ALPHA)
    low, high = proportion_bounds(k, n, ALPHA, prior)
    # the mixture is monotone beyond k/n, so all rates past the bound are rejected
    for i in range(len(k)):
        rate = k[i] / n[i]
        for bound, grid, below in (
            (high[i], np.linspace(rate, 1, 2001)[1:-1], True),
            (low[i], np.linspace(0, rate, 2001)[1:-1], False),
        ):
            if grid.size == 0 or (below and k[i] == n[i]) or (not below and k[i] == 0):
                continue
            log_m = _log_mixture(
                np.full_like(grid, k[i]), np.full_like(grid, n[i]), grid, prior, below
            )
            steps = np.diff(log_m) if below else -np.diff(log_m)
            assert np.all(steps >= -1e-9)
            inside = grid < bound if below else grid > bound
            assert np.all(log_m[inside] < level)
            assert np.all(log_m[~inside] >= level)
    # and the direct tests agree with the bounds
    for i in range(len(k)):
        for p0 in (high[i] * (1 + 1e-9), high[i] * (1 - 1e-6)):
            if 0 < p0 < 1:
                assert proportion_rejects_above(k[i], n[i], p0, ALPHA, prior) == (high[i] < p0)
