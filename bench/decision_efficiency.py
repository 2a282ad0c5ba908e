"""How many pairs the decision engine needs, against a fixed-horizon test computed in the same run.

Each scenario is a criterion and a generator of per-pair values. Seeded runs go through the
backtest path (`criteria.readiness.backtest`: the evidence built as the aggregates hold it,
a look after every 50 pairs, the interval carried from look to look as the stored verdict
carries it), and the bench prints the median and 80th percentile of the pairs at the first
PASS (or FAIL), the fixed-horizon sample size of a one-sided test at the same alpha with 80 %
power, and their ratio; then, for candidates exactly at the threshold, how often a PASS ever
appears when looked at every 50 pairs up to 5,000.

    .venv/bin/python bench/decision_efficiency.py [--runs 400] [--quick]

Targets (issue 15): 80th percentile <= 3x the fixed-horizon size, false PASS <= alpha.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from criteria.readiness.backtest import Run, backtest_run
from criteria.readiness.engine import Decision
from criteria.readiness.schema import CriteriaSet, parse_criteria

ALPHA = 0.05
POWER = 0.8
LOOK = 50

Generator = Callable[[np.random.Generator, int], Run]


@dataclass
class Scenario:
    """A criterion, a stream of values, and the fixed-horizon size to compare with."""

    name: str
    criterion: str
    generate: Generator
    fixed_n: int | None
    expect: str = "PASS"
    pairs: int = 5000


def _criteria(line: str) -> CriteriaSet:
    return parse_criteria(f"use_case: bench\nalpha: {ALPHA}\ncriteria:\n  - {line}\n")


# --- fixed-horizon sizes: one-sided tests at ALPHA with POWER, computed here ---------------


def t_test_n(delta: float, sd: float) -> int:
    """Smallest n at which a one-sided one-sample t-test detects `delta` with POWER."""
    for n in range(2, 10**6):
        critical = stats.t.ppf(1 - ALPHA, n - 1)
        if 1 - stats.nct.cdf(critical, n - 1, delta * math.sqrt(n) / sd) >= POWER:
            return n
    raise ValueError("no n found")


def two_sample_n(delta: float, sd_a: float, sd_b: float, rate: float) -> int:
    """Smallest pair count at which a z-test on mean(A) - mean(B), B on `rate` of the pairs,
    detects `delta` with POWER (B's n = rate x pairs)."""
    z = stats.norm.ppf(1 - ALPHA) + stats.norm.ppf(POWER)
    return math.ceil(z**2 * (sd_a**2 + sd_b**2 / rate) / delta**2)


def binomial_n(p_true: float, p0: float) -> int:
    """Smallest n at which the exact one-sided binomial test of p0 rejects with POWER."""
    below = p_true < p0
    for n in range(5, 10**6):
        if below:  # reject "rate >= p0" when k <= c
            c = int(stats.binom.ppf(ALPHA, n, p0))
            while c >= 0 and stats.binom.cdf(c, n, p0) > ALPHA:
                c -= 1
            power = stats.binom.cdf(c, n, p_true) if c >= 0 else 0.0
        else:  # reject "rate <= p0" when k >= c
            c = int(stats.binom.isf(ALPHA, n, p0)) + 1
            while c > 0 and stats.binom.sf(c - 1, n, p0) <= ALPHA:
                c -= 1
            c += 1
            power = stats.binom.sf(c - 1, n, p_true)
        if power >= POWER:
            return n
    raise ValueError("no n found")


# --- value generators ---------------------------------------------------------------------


def noise_adjusted(
    mean_diff: float, sd: float, rate: float = 1.0, sd_noise: float | None = None
) -> Generator:
    """Candidate-vs-API similarity on every pair, API-vs-API on `rate` of them."""
    half = sd / math.sqrt(2) if sd_noise is None else sd

    def make(rng: np.random.Generator, n: int) -> Run:
        candidate = rng.normal(0.85 + mean_diff, half, n)
        noise = rng.normal(0.85, sd_noise if sd_noise is not None else half, n)
        noise[rng.random(n) >= rate] = np.nan
        return Run({"quality.semantic_similarity": candidate, "noise.semantic_similarity": noise})

    return make


def beta_mean(mean: float, sd: float, per_bucket: int | None = None) -> Generator:
    """Scores in [0, 1] with the given mean and sd; `per_bucket` pairs each 10 minutes."""
    total = mean * (1 - mean) / sd**2 - 1
    a, b = mean * total, (1 - mean) * total

    def make(rng: np.random.Generator, n: int) -> Run:
        t = np.arange(n, dtype=np.float64) * (600 / per_bucket) if per_bucket else None
        return Run({"quality.rouge_l": rng.beta(a, b, n)}, t)

    return make


def binary(metric: str, rate: float) -> Generator:
    """0/1 values at `rate`."""

    def make(rng: np.random.Generator, n: int) -> Run:
        return Run({metric: (rng.random(n) < rate).astype(np.float64)})

    return make


def latency_below(share: float, threshold: float = 1500.0) -> Generator:
    """Lognormal latencies with P(X <= threshold) = share."""
    sigma = 0.5
    mu = math.log(threshold) - sigma * stats.norm.ppf(share)

    def make(rng: np.random.Generator, n: int) -> Run:
        return Run({"candidate.latency_ms": rng.lognormal(mu, sigma, n)})

    return make


def same_latency(ratio: float = 1.0) -> Generator:
    """Candidate and API latencies of one lognormal shape (sigma 0.6), the candidate x ratio."""

    def make(rng: np.random.Generator, n: int) -> Run:
        api = rng.lognormal(math.log(400), 0.6, n)
        return Run(
            {
                "primary.latency_ms": api,
                "candidate.latency_ms": rng.lognormal(math.log(400 * ratio), 0.6, n),
            }
        )

    return make


NOISE = (
    "{name: c, metric: quality.semantic_similarity, stat: mean, mode: noise_adjusted, margin: 0.03}"
)
MEAN = "{name: c, metric: quality.rouge_l, stat: mean, op: '>=', threshold: 0.8}"
ERRORS = "{name: c, metric: candidate.error, stat: proportion, op: '<=', threshold: 0.01}"
P95 = "{name: c, metric: candidate.latency_ms, stat: quantile, q: 0.95, op: '<=', threshold: 1500}"
EXACT = "{name: c, metric: quality.exact_match, stat: proportion, op: '>=', threshold: 0.8}"
RELATIVE = (
    "{name: c, metric: candidate.latency_ms, stat: quantile, q: 0.95, mode: relative, margin: 0.2}"
)


def scenarios() -> list[Scenario]:
    """The issue's five scenarios, and a few of our own."""
    return [
        Scenario(
            "(a) noise-adj., diff 0, sd .08", NOISE, noise_adjusted(0, 0.08), t_test_n(0.03, 0.08)
        ),
        Scenario(
            "(a') noise-adj., diff 0, sd .15", NOISE, noise_adjusted(0, 0.15), t_test_n(0.03, 0.15)
        ),
        Scenario(
            "(a5) noise-adj., 5 % re-asks",
            NOISE,
            noise_adjusted(0, 0.08, rate=0.05, sd_noise=0.04),
            two_sample_n(0.03, 0.08, 0.04, 0.05),
            pairs=20000,
        ),
        Scenario(
            "(b) mean .85 vs >= .80, sd .15", MEAN, beta_mean(0.85, 0.15), t_test_n(0.05, 0.15)
        ),
        Scenario(
            "(b500) same, 500 pairs / 10 min",
            MEAN,
            beta_mean(0.85, 0.15, per_bucket=500),
            t_test_n(0.05, 0.15),
        ),
        Scenario(
            "(c) errors .003 vs <= .01",
            ERRORS,
            binary("candidate.error", 0.003),
            binomial_n(0.003, 0.01),
        ),
        Scenario("(d) P(X<=T) .97 vs p95 <= T", P95, latency_below(0.97), binomial_n(0.97, 0.95)),
        Scenario(
            "(e) exact match .9 vs >= .8",
            EXACT,
            binary("quality.exact_match", 0.9),
            binomial_n(0.9, 0.8),
        ),
        Scenario(
            "(f) noise-adj., drop .06 (FAIL)",
            NOISE,
            noise_adjusted(-0.06, 0.08),
            t_test_n(0.03, 0.08),
            "FAIL",
        ),
        Scenario("(g) p95 same as API vs <= 1.2x", RELATIVE, same_latency(), None),
        Scenario("(h) p95 1.5x the API (FAIL)", RELATIVE, same_latency(1.5), None, "FAIL"),
    ]


AT_THRESHOLD = [
    ("mean at .80", MEAN, beta_mean(0.80, 0.15)),
    ("noise-adj. diff at -.03", NOISE, noise_adjusted(-0.03, 0.08)),
    ("errors at .01", ERRORS, binary("candidate.error", 0.01)),
    ("P(X<=T) at .95", P95, latency_below(0.95)),
]


def _first(verdict: str) -> Callable[[Decision], bool]:
    return lambda decision: decision.criteria[0].verdict == verdict


def pairs_to(scenario: Scenario, runs: int, seed: int) -> list[float]:
    """Pairs at the first look with the expected verdict, per run (inf: never)."""
    criteria = _criteria(scenario.criterion)
    found = []
    for i in range(runs):
        run = scenario.generate(np.random.default_rng([seed, i]), scenario.pairs)
        outcome = backtest_run(str(i), criteria, run, LOOK, stop=_first(scenario.expect))
        first = outcome.criteria[0]
        value = first.first_pass_n if scenario.expect == "PASS" else first.first_fail_n
        found.append(float(value) if value is not None else math.inf)
    return found


def false_pass_rate(criterion: str, generate: Generator, runs: int, seed: int) -> float:
    """Share of runs at the threshold that ever show PASS, looked at every 50 up to 5,000."""
    criteria = _criteria(criterion)
    passes = 0
    for i in range(runs):
        run = generate(np.random.default_rng([seed, i]), 5000)
        outcome = backtest_run(str(i), criteria, run, LOOK, stop=_first("PASS"))
        passes += outcome.criteria[0].first_pass_n is not None
    return passes / runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400, help="runs per scenario")
    parser.add_argument(
        "--threshold-runs",
        type=int,
        default=1000,
        help="runs per at-threshold row (a rate of 0.05 over 400 runs has an SE of 0.011)",
    )
    parser.add_argument("--quick", action="store_true", help="100 runs (a rough look)")
    args = parser.parse_args()
    runs = 100 if args.quick else args.runs
    started = time.perf_counter()
    print(f"alpha {ALPHA}, a look every {LOOK} pairs, {runs} seeded runs per row")
    print()
    header = f"| {'scenario':34} | fixed n | median | 80th pct | ratio (80th / fixed) |"
    print(header)
    print("|" + "|".join("-" * (len(part)) for part in header.split("|")[1:-1]) + "|")
    for index, scenario in enumerate(scenarios()):
        found = np.asarray(pairs_to(scenario, runs, seed=index))
        median, p80 = np.percentile(found, 50), np.percentile(found, 80)
        fixed = scenario.fixed_n
        ratio = f"{p80 / fixed:.2f}x" if fixed and math.isfinite(p80) else "n/a"
        label = f"{scenario.name} [{scenario.expect}]"
        print(
            f"| {label:34} | {fixed if fixed else 'n/a':>7} | {median:>6.0f} | {p80:>8.0f} "
            f"| {ratio:>20} |"
        )
    print()
    at_runs = 100 if args.quick else args.threshold_runs
    print(f"{at_runs} runs per row, looked at every {LOOK} pairs up to 5,000")
    print(f"| {'at the threshold':34} | false PASS (<= {ALPHA}) | +- 2 SE |")
    print(f"|{'-' * 36}|{'-' * 22}|{'-' * 9}|")
    for index, (name, criterion, generate) in enumerate(AT_THRESHOLD):
        rate = false_pass_rate(criterion, generate, at_runs, seed=100 + index)
        error = 2 * math.sqrt(max(rate * (1 - rate), 1e-9) / at_runs)
        print(f"| {name:34} | {rate:>20.3f} | {error:>7.3f} |")
    print()
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
