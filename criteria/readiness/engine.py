"""The decision: per-criterion verdicts over samples, and the use case's GO / NO_GO (SPEC §6).

Pure functions over arrays and figures; loading them from the database is
`criteria.readiness.service`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import numpy as np

from criteria.readiness.schema import CriteriaSet, Criterion
from criteria.readiness.stats import (
    Blocks,
    FloatArray,
    Interval,
    mean_interval,
    mean_interval_blocks,
    mean_samples_needed,
    mean_samples_needed_blocks,
    proportion_interval,
    proportion_samples_needed,
    quantile_interval,
    quantile_ranks,
)
from evaluators.catalog import CATALOG

CriterionVerdict = Literal["PASS", "FAIL", "INCONCLUSIVE", "NO_DATA"]
Verdict = Literal["GO", "NO_GO", "INSUFFICIENT_DATA"]


@dataclass(frozen=True)
class Evidence:
    """A criterion's samples summed up: all its verdict needs, whether read raw or aggregated.

    `blocks` (means): count, sum and sum of squares of consecutive blocks in arrival order.
    `nonzero` (proportions): how many samples are not 0. `below` and `at` (quantiles): how
    many are under and exactly at the effective threshold; `order(r)` is the range known to
    hold the r-th smallest sample (one value when read raw, a histogram bin when aggregated).
    """

    n: int
    nonzero: int = 0
    blocks: Blocks | None = None
    below: int = 0
    at: int = 0
    order: Callable[[int], tuple[float, float]] | None = None


@dataclass(frozen=True)
class CriterionData:
    """What one criterion is judged on: time-ordered samples, their evidence, or a figure."""

    values: FloatArray = field(default_factory=lambda: np.empty(0))
    figure: float | None = None
    evidence: Evidence | None = None


@dataclass(frozen=True)
class CriterionResult:
    """One criterion's verdict and the figures behind it (SPEC §7 `criteria[]`)."""

    name: str
    metric: str
    stat: str | None
    mode: str
    op: str | None
    threshold: float | None
    critical: bool
    verdict: CriterionVerdict
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    needed_n: int | None
    note: str = ""


@dataclass(frozen=True)
class Decision:
    """A use case's verdict with its reasons."""

    verdict: Verdict
    criteria: list[CriterionResult]
    reasons: list[str]


def effective_threshold(criterion: Criterion) -> tuple[str, float]:
    """The (op, threshold) the statistic is compared with, for every mode."""
    better = CATALOG[criterion.metric].better
    if criterion.mode == "noise_adjusted":
        return ">=", -(criterion.margin or 0.0)
    if criterion.mode == "relative":
        margin = criterion.margin or 0.0
        return ("<=", 1 + margin) if better == "lower" else (">=", 1 - margin)
    assert criterion.op is not None
    assert criterion.threshold is not None
    return criterion.op, criterion.threshold


def compare(interval: Interval, op: str, threshold: float) -> CriterionVerdict:
    """PASS when the whole interval is on the good side, FAIL when wholly on the bad side."""
    if op in ("<=", "<"):
        if interval.high < threshold or (op == "<=" and interval.high == threshold):
            return "PASS"
        return "FAIL" if interval.low > threshold else "INCONCLUSIVE"
    if interval.low > threshold or (op == ">=" and interval.low == threshold):
        return "PASS"
    return "FAIL" if interval.high < threshold else "INCONCLUSIVE"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _interval(criterion: Criterion, values: FloatArray, alpha: float) -> Interval:
    metric = CATALOG[criterion.metric]
    if criterion.stat == "quantile":
        assert criterion.q is not None
        return quantile_interval(values, criterion.q, alpha)
    if criterion.stat == "proportion":
        return proportion_interval(int(np.count_nonzero(values)), len(values), alpha)
    if criterion.mode == "noise_adjusted":
        # differences of two scores in [low, high] lie in [low - high, high - low]
        assert metric.low is not None
        assert metric.high is not None
        span = metric.high - metric.low
        return mean_interval(values, -span, span, alpha)
    assert metric.low is not None
    assert metric.high is not None
    return mean_interval(values, metric.low, metric.high, alpha)


def evaluate_criterion(criterion: Criterion, data: CriterionData, alpha: float) -> CriterionResult:
    """One criterion's verdict at confidence level 1 - alpha."""
    op, threshold = effective_threshold(criterion)

    def result(
        verdict: CriterionVerdict, interval: Interval | None, needed: int | None, note: str = ""
    ) -> CriterionResult:
        return CriterionResult(
            name=criterion.name,
            metric=criterion.metric,
            stat=criterion.stat,
            mode=criterion.mode,
            op=op,
            threshold=threshold,
            critical=criterion.critical,
            verdict=verdict,
            estimate=_finite(interval.estimate) if interval else None,
            ci_low=_finite(interval.low) if interval else None,
            ci_high=_finite(interval.high) if interval else None,
            n=interval.n if interval else 0,
            needed_n=needed,
            note=note,
        )

    if CATALOG[criterion.metric].kind == "figure":
        if data.figure is None:
            return result("NO_DATA", None, None, "not measured or declared yet")
        point = Interval(data.figure, data.figure, data.figure, 1)
        return result(compare(point, op, threshold), point, None)

    if data.evidence is not None:
        return _judge_evidence(criterion, data.evidence, op, threshold, alpha, result)
    n = len(data.values)
    if n < criterion.min_samples:
        interval = _interval(criterion, data.values, alpha) if n else None
        return result(
            "NO_DATA", interval, criterion.min_samples, f"{n} of {criterion.min_samples} samples"
        )
    interval = _interval(criterion, data.values, alpha)
    verdict = compare(interval, op, threshold)
    needed = None
    if verdict == "INCONCLUSIVE":
        needed = _samples_needed(criterion, data.values, op, threshold, alpha)
    return result(verdict, interval, needed)


def _range(criterion: Criterion) -> tuple[float, float]:
    """The range a criterion's samples lie in, for a mean."""
    metric = CATALOG[criterion.metric]
    assert metric.low is not None
    assert metric.high is not None
    if criterion.mode == "noise_adjusted":
        # differences of two scores in [low, high] lie in [low - high, high - low]
        span = metric.high - metric.low
        return -span, span
    return metric.low, metric.high


def _quantile_verdict(
    op: str, below: int, at: int, low: int | None, high: int | None
) -> CriterionVerdict:
    """`compare` for a quantile's interval ends (the low-th and high-th smallest samples),
    decided from the counts below and at the threshold alone."""
    if op in ("<=", "<"):
        passed = high is not None and below + (at if op == "<=" else 0) >= high
        failed = low is not None and below + at < low
    else:
        passed = low is not None and below + (at if op == ">" else 0) < low
        failed = high is not None and below >= high
    return "PASS" if passed else "FAIL" if failed else "INCONCLUSIVE"


def _judge_evidence(
    criterion: Criterion,
    evidence: Evidence,
    op: str,
    threshold: float,
    alpha: float,
    result: Callable[[CriterionVerdict, Interval | None, int | None, str], CriterionResult],
) -> CriterionResult:
    n = evidence.n
    verdict: CriterionVerdict
    interval: Interval | None = None
    needed: int | None = None
    if n == 0:
        verdict = "NO_DATA"
    elif criterion.stat == "quantile":
        assert criterion.q is not None
        assert evidence.order is not None
        low, high, middle = quantile_ranks(n, criterion.q, alpha)
        estimate = evidence.order(middle)
        interval = Interval(
            (estimate[0] + estimate[1]) / 2,
            evidence.order(low)[0] if low is not None else -math.inf,
            evidence.order(high)[1] if high is not None else math.inf,
            n,
        )
        verdict = _quantile_verdict(op, evidence.below, evidence.at, low, high)
        if verdict == "INCONCLUSIVE":
            below = evidence.below + (evidence.at if op in ("<=", "<") else 0)
            needed = proportion_samples_needed(below, n, criterion.q, alpha)
    elif criterion.stat == "proportion":
        interval = proportion_interval(evidence.nonzero, n, alpha)
        verdict = compare(interval, op, threshold)
        if verdict == "INCONCLUSIVE":
            needed = proportion_samples_needed(evidence.nonzero, n, threshold, alpha)
    else:
        assert evidence.blocks is not None
        low_value, high_value = _range(criterion)
        interval = mean_interval_blocks(evidence.blocks, low_value, high_value, alpha)
        verdict = compare(interval, op, threshold)
        if verdict == "INCONCLUSIVE":
            needed = mean_samples_needed_blocks(
                evidence.blocks, low_value, high_value, threshold, alpha
            )
    if n < criterion.min_samples:
        note = f"{n} of {criterion.min_samples} samples"
        return result("NO_DATA", interval, criterion.min_samples, note)
    return result(verdict, interval, needed, "")


def _samples_needed(
    criterion: Criterion, values: FloatArray, op: str, threshold: float, alpha: float
) -> int | None:
    """Samples in total until an INCONCLUSIVE criterion is likely decided, or None."""
    if criterion.stat == "quantile":
        assert criterion.q is not None
        # P(X <= T) against q (or P(X < T) for ">="), the proportion the quantile rests on
        below = values <= threshold if op in ("<=", "<") else values < threshold
        return proportion_samples_needed(
            int(np.count_nonzero(below)), len(values), criterion.q, alpha
        )
    if criterion.stat == "proportion":
        return proportion_samples_needed(
            int(np.count_nonzero(values)), len(values), threshold, alpha
        )
    metric = CATALOG[criterion.metric]
    assert metric.low is not None
    assert metric.high is not None
    if criterion.mode == "noise_adjusted":
        span = metric.high - metric.low
        return mean_samples_needed(values, -span, span, threshold, alpha)
    return mean_samples_needed(values, metric.low, metric.high, threshold, alpha)


def decide(
    criteria: CriteriaSet,
    data: dict[str, CriterionData],
    window_start: datetime | None,
    now: datetime,
    window_hours: float | None = None,
) -> Decision:
    """The verdict by the rules of SPEC §6, with per-criterion alpha = alpha / #criteria.

    Requiring every criterion to PASS for a GO, a wrong GO needs at least one criterion to
    pass wrongly; splitting alpha evenly (Bonferroni) bounds that chance by alpha overall.
    """
    alpha = criteria.alpha / len(criteria.criteria)
    results = [evaluate_criterion(c, data[c.name], alpha) for c in criteria.criteria]
    failed = [r for r in results if r.verdict == "FAIL"]
    if failed:
        failed.sort(key=lambda r: not r.critical)
        reasons = [
            f"{'critical ' if r.critical else ''}criterion {r.name!r} fails: "
            f"{CATALOG[r.metric].label} {_fmt(r.estimate)} "
            f"(interval {_fmt(r.ci_low)}..{_fmt(r.ci_high)}) against {r.op} {_fmt(r.threshold)}"
            for r in failed
        ]
        return Decision("NO_GO", results, reasons)
    elapsed = now - window_start if window_start else timedelta(0)
    if all(r.verdict == "PASS" for r in results):
        if elapsed >= criteria.min_duration:
            return Decision("GO", results, ["every criterion passes"])
        wait = criteria.min_duration - elapsed
        return Decision(
            "INSUFFICIENT_DATA",
            results,
            [f"every criterion passes; min_duration needs {_duration(wait)} more of traffic"],
        )
    reasons = []
    for r in results:
        if r.verdict == "PASS":
            continue
        if r.verdict == "NO_DATA" and CATALOG[r.metric].kind == "figure":
            reasons.append(f"{r.name!r}: {CATALOG[r.metric].label} is not measured yet")
            continue
        more = None if r.needed_n is None else max(r.needed_n - r.n, 0)
        if more is None:
            reasons.append(f"{r.name!r} is {r.verdict}: the estimate sits on the threshold")
            continue
        eta = ""
        if window_hours and r.n:
            # this criterion's own sample rate: some draw on a subset (re-asks, a segment)
            hours = more / (r.n / window_hours)
            eta = f" (about {_duration(timedelta(hours=hours))} at the current rate)"
        reasons.append(f"{r.name!r} is {r.verdict}: about {more} more samples needed{eta}")
    if elapsed < criteria.min_duration:
        reasons.append(f"min_duration needs {_duration(criteria.min_duration - elapsed)} more")
    return Decision("INSUFFICIENT_DATA", results, reasons)


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}"


def _duration(delta: timedelta) -> str:
    seconds = max(delta.total_seconds(), 0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
