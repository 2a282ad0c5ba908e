"""The verdict stays valid however often it is looked at (SPEC §6), shown by simulation.

A candidate exactly at the threshold, checked after every batch of 50 pairs up to 5,000, must
get PASS in at most alpha of the runs (plus simulation error); a clearly better one must PASS
within a stated number of pairs, and a clearly worse one must FAIL.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from criteria.readiness.engine import CriterionData, evaluate_criterion
from criteria.readiness.schema import Criterion

ALPHA = 0.05
RUNS = 500
LOOKS = range(50, 5001, 50)
# Binomial standard error of a rate of alpha over RUNS runs, three of them as slack.
SLACK = 3 * math.sqrt(ALPHA * (1 - ALPHA) / RUNS)

MEAN = Criterion(name="quality", metric="quality.rouge_l", stat="mean", op=">=", threshold=0.7)
RATE = Criterion(
    name="errors", metric="candidate.error", stat="proportion", op="<=", threshold=0.01
)
P95 = Criterion(
    name="p95", metric="candidate.latency_ms", stat="quantile", q=0.95, op="<=", threshold=1500
)


def _mean_at_threshold(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.beta(7, 3, size=n)  # mean exactly 0.7


def _rate_at_threshold(rng: np.random.Generator, n: int) -> np.ndarray:
    return (rng.random(n) < 0.01).astype(np.float64)


def _p95_at_threshold(rng: np.random.Generator, n: int) -> np.ndarray:
    # lognormal whose 95th percentile is exactly 1500 ms
    sigma = 0.6
    mu = math.log(1500) - 1.6448536269514722 * sigma
    return rng.lognormal(mu, sigma, size=n)


def _first_verdicts(criterion: Criterion, sample: np.ndarray) -> tuple[str | None, int | None]:
    """The first decisive verdict over the looks, and the sample size at which it came."""
    for n in LOOKS:
        result = evaluate_criterion(criterion, CriterionData(values=sample[:n]), ALPHA)
        if result.verdict in ("PASS", "FAIL"):
            return result.verdict, n
    return None, None


@pytest.mark.parametrize(
    ("criterion", "draw"),
    [(MEAN, _mean_at_threshold), (RATE, _rate_at_threshold), (P95, _p95_at_threshold)],
    ids=["mean", "proportion-1pct", "p95"],
)
def test_at_the_threshold_a_pass_is_rare_however_often_one_looks(criterion, draw):
    rng = np.random.default_rng(20261127)
    passes = 0
    for _ in range(RUNS):
        verdict, _ = _first_verdicts(criterion, draw(rng, 5000))
        passes += verdict == "PASS"
    rate = passes / RUNS
    print(f"{criterion.name}: false PASS in {rate:.3f} of {RUNS} runs (alpha {ALPHA})")
    assert rate <= ALPHA + SLACK


@pytest.mark.parametrize(
    ("criterion", "draw", "expected", "within"),
    [
        (MEAN, lambda rng, n: rng.beta(8, 2, size=n), "PASS", 500),  # mean 0.8 vs >= 0.7
        (MEAN, lambda rng, n: rng.beta(6, 4, size=n), "FAIL", 500),  # mean 0.6
        (RATE, lambda rng, n: (rng.random(n) < 0.001).astype(float), "PASS", 2000),
        (RATE, lambda rng, n: (rng.random(n) < 0.05).astype(float), "FAIL", 1000),
        (P95, lambda rng, n: rng.lognormal(math.log(500), 0.4, size=n), "PASS", 500),
        (P95, lambda rng, n: rng.lognormal(math.log(1500), 0.4, size=n), "FAIL", 500),
    ],
    ids=["mean-better", "mean-worse", "rate-better", "rate-worse", "p95-better", "p95-worse"],
)
def test_a_clear_difference_is_decided_within_a_stated_sample_size(
    criterion, draw, expected, within
):
    rng = np.random.default_rng(7)
    decided_at = []
    for _ in range(50):
        verdict, n = _first_verdicts(criterion, draw(rng, 5000))
        assert verdict == expected
        decided_at.append(n)
    print(f"{criterion.name} {expected}: median n {np.median(decided_at)}, max {max(decided_at)}")
    assert np.median(decided_at) <= within
