"""The decision: per-criterion verdicts over evidence, and the use case's GO / NO_GO (SPEC §6).

Pure functions over summed evidence and figures; loading them from the database is
`criteria.readiness.service`, replaying recorded values is `criteria.readiness.backtest`.

Each criterion is judged at the full alpha with a one-sided bound: a GO needs every criterion
to PASS, so a wrong GO needs the true value of at least one criterion on the bad side while
its bound says otherwise, which has chance at most alpha for that criterion alone
(intersection-union, Berger 1982, Technometrics 24(4)). Bounds are the running intersection
over every bucket end the evidence holds (and over the previous look, when given), so a PASS
or FAIL does not flip back while the data are consistent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Literal

import numpy as np

from criteria.readiness.schema import CriteriaSet, Criterion
from criteria.readiness.sequences import (
    MIN_N,
    FloatArray,
    difference_bounds,
    mean_bounds,
    mean_needed,
    proportion_bounds,
    proportion_needed,
    proportion_rejects_above,
    proportion_rejects_below,
    running,
)
from evaluators.catalog import CATALOG

CriterionVerdict = Literal["PASS", "FAIL", "INCONCLUSIVE", "NO_DATA"]
Verdict = Literal["GO", "NO_GO", "INSUFFICIENT_DATA"]
Order = Callable[[int], tuple[float, float]]

# A forecast beyond this many samples is not a plan: the estimate sits on the margin.
AT_THE_MARGIN_N = 1_000_000
AT_THE_MARGIN = "the candidate is at the margin: more data will not settle this soon"


@dataclass(frozen=True)
class Sums:
    """A series' cumulative count, sum and sum of squares at each bucket end (the last: now)."""

    n: FloatArray
    total: FloatArray
    total_sq: FloatArray

    @classmethod
    def of(cls, values: FloatArray, ends: FloatArray | None = None) -> Sums:
        """From values in arrival order; `ends` are the bucket ends (counts), default each one."""
        values = np.asarray(values, dtype=np.float64)
        n = np.arange(1, len(values) + 1, dtype=np.float64)
        total, total_sq = np.cumsum(values), np.cumsum(values * values)
        if ends is not None and len(values):
            index = np.asarray(ends, dtype=np.int64) - 1
            index = index[index >= 0]
            n, total, total_sq = n[index], total[index], total_sq[index]
        return cls(n, total, total_sq)

    @classmethod
    def of_buckets(cls, n: FloatArray, total: FloatArray, total_sq: FloatArray) -> Sums:
        """From per-bucket count, sum and sum of squares in time order."""
        return cls(np.cumsum(n), np.cumsum(total), np.cumsum(total_sq))

    @property
    def count(self) -> int:
        """How many samples up to now."""
        return int(self.n[-1]) if len(self.n) else 0

    @property
    def mean(self) -> float:
        """The mean up to now (nan without samples)."""
        return float(self.total[-1] / self.n[-1]) if self.count else math.nan

    @property
    def sd(self) -> float:
        """The standard deviation up to now (0 below two samples)."""
        if self.count < 2:
            return 0.0
        n = self.n[-1]
        variance = (self.total_sq[-1] - self.total[-1] ** 2 / n) / (n - 1)
        return math.sqrt(max(float(variance), 0.0))


@dataclass(frozen=True)
class Evidence:
    """A criterion's samples summed up: all its verdict needs, whether read raw or aggregated.

    `sums`: the series (means and proportions; a proportion's sum is its count of 1s), or the
    candidate's score of a noise-adjusted criterion, whose API-vs-API score is `noise`.
    Quantiles: `below` and `at` count the samples under and exactly at the threshold, and
    `order(r)` is the range known to hold the r-th smallest sample (one value when read raw, a
    histogram bin when aggregated); a relative quantile has the API's as `baseline_*`.
    """

    n: int
    sums: Sums | None = None
    noise: Sums | None = None
    below: int = 0
    at: int = 0
    order: Order | None = None
    baseline_n: int = 0
    baseline_order: Order | None = None


@dataclass(frozen=True)
class CriterionData:
    """What one criterion is judged on: its evidence, a figure, or one series' values.

    `values` (in arrival order, one look) serve a single-series criterion; the loaders
    and the backtest hand in `evidence`, which also carries a noise-adjusted criterion's two
    series and a relative one's baseline.
    """

    figure: float | None = None
    evidence: Evidence | None = None
    values: FloatArray | None = None
    # why this criterion can never get data (e.g. no re-asks are made), said instead of a count
    never: str | None = None


def exact_order(values: FloatArray) -> Order:
    """`Evidence.order` of raw values: the r-th smallest, exactly."""
    ordered = np.sort(values)

    def order(rank: int) -> tuple[float, float]:
        return float(ordered[rank - 1]), float(ordered[rank - 1])

    return order


def quantile_evidence(
    criterion: Criterion, values: FloatArray, baseline: FloatArray | None = None
) -> Evidence:
    """A quantile criterion's evidence from raw values (and the API's, for mode relative)."""
    values = np.asarray(values, dtype=np.float64)
    if criterion.mode == "relative":
        base = np.asarray(baseline if baseline is not None else [], dtype=np.float64)
        return Evidence(
            n=len(values),
            order=exact_order(values),
            baseline_n=len(base),
            baseline_order=exact_order(base),
        )
    _, threshold = effective_threshold(criterion)
    return Evidence(
        n=len(values),
        below=int(np.count_nonzero(values < threshold)),
        at=int(np.count_nonzero(values == threshold)),
        order=exact_order(values),
    )


def values_evidence(criterion: Criterion, values: FloatArray) -> Evidence:
    """The evidence of one series' values, judged as one look."""
    values = np.asarray(values, dtype=np.float64)
    if criterion.mode != "absolute":
        raise ValueError(f"criterion {criterion.name!r}: mode {criterion.mode} needs evidence")
    if criterion.stat == "quantile":
        return quantile_evidence(criterion, values)
    # one look: the caller carries the interval over from its last look (`previous`)
    return Evidence(n=len(values), sums=Sums.of(values, np.array([len(values)])))


@dataclass(frozen=True)
class Bounds:
    """A criterion's interval at a look: what the next look intersects with."""

    low: float
    high: float
    n: int


@dataclass(frozen=True)
class CriterionResult:
    """One criterion's verdict and the figures behind it (SPEC §7 `criteria[]`).

    `needed_n` is the total samples at which the criterion is expected to be decided (80 %
    chance, at the design point); `needed_low` the same at a 50 % chance: the range shown.
    """

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
    needed_low: int | None = None
    note: str = ""


@dataclass(frozen=True)
class Decision:
    """A use case's verdict with its reasons."""

    verdict: Verdict
    criteria: list[CriterionResult]
    reasons: list[str]


def effective_threshold(criterion: Criterion) -> tuple[str, float]:
    """The (op, threshold) the statistic is compared with, for every mode."""
    if criterion.mode == "noise_adjusted":
        return ">=", -(criterion.margin or 0.0)
    if criterion.mode == "relative":
        margin = criterion.margin or 0.0
        better = CATALOG[criterion.metric].better
        return ("<=", 1 + margin) if better == "lower" else (">=", 1 - margin)
    assert criterion.op is not None
    assert criterion.threshold is not None
    return criterion.op, criterion.threshold


def compare(low: float, high: float, op: str, threshold: float) -> CriterionVerdict:
    """PASS when the whole interval is on the good side, FAIL when wholly on the bad side."""
    if op in ("<=", "<"):
        if high < threshold or (op == "<=" and high == threshold):
            return "PASS"
        return "FAIL" if low > threshold else "INCONCLUSIVE"
    if low > threshold or (op == ">=" and low == threshold):
        return "PASS"
    return "FAIL" if high < threshold else "INCONCLUSIVE"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class _Judged:
    estimate: float
    low: float
    high: float
    n: int
    forecast: Callable[[], tuple[int | None, int | None]] | None = None
    note: str = ""

    @cached_property
    def needed(self) -> tuple[int | None, int | None]:
        """Samples in total to a decision at 50 % and 80 % chance (computed when asked)."""
        return self.forecast() if self.forecast is not None else (None, None)


def _mean(sums: Sums, alpha: float, op: str, threshold: float) -> _Judged:
    low, high = running(*mean_bounds(sums.n, sums.total, sums.total_sq, alpha))
    estimate = sums.mean
    gap = estimate - threshold if op in (">=", ">") else threshold - estimate
    return _Judged(
        estimate,
        float(low[-1]),
        float(high[-1]),
        sums.count,
        lambda: _mean_forecast(sums.sd, abs(gap), alpha),
    )


def _mean_forecast(sd: float, gap: float, alpha: float) -> tuple[int | None, int | None]:
    if gap <= 0 or sd <= 0:
        return None, None
    return mean_needed(sd, gap, alpha, power=0.5), mean_needed(sd, gap, alpha, power=0.8)


def _noise_adjusted(evidence: Evidence, alpha: float, margin: float) -> _Judged:
    """Candidate-vs-API score on all pairs minus API-vs-API on the re-asked ones."""
    scores, noise = evidence.sums, evidence.noise
    assert scores is not None
    if noise is None or noise.count == 0:
        return _Judged(math.nan, -math.inf, math.inf, scores.count, note="no noise re-asks yet")
    # the loaders give both series the same bucket ends; otherwise only the totals line up
    same = len(noise.n) == len(scores.n)
    a = (scores.n, scores.total, scores.total_sq) if same else _last(scores)
    b = (noise.n, noise.total, noise.total_sq) if same else _last(noise)
    low, high = running(*difference_bounds(*a, *b, alpha=alpha))
    estimate = scores.mean - noise.mean
    rate = noise.count / max(scores.count, 1)
    # the forecast is made at the design point, no difference between the candidate and the
    # API, or at the estimate when that is less favourable (a forecast that cannot be met
    # already helps nobody)
    effective_sd = math.sqrt(scores.sd**2 + noise.sd**2 / max(rate, 1e-9))
    gap = min(margin, margin + estimate)
    note = f"{noise.count} noise re-asks" if noise.count < MIN_N else ""
    return _Judged(
        estimate,
        float(low[-1]),
        float(high[-1]),
        scores.count,
        lambda: _mean_forecast(effective_sd, gap, alpha),
        note,
    )


def _last(sums: Sums) -> tuple[FloatArray, FloatArray, FloatArray]:
    return sums.n[-1:], sums.total[-1:], sums.total_sq[-1:]


def _proportion(sums: Sums, alpha: float, op: str, threshold: float) -> _Judged:
    successes = np.rint(sums.total)
    low, high = running(*proportion_bounds(successes, sums.n, alpha))
    n = sums.count
    estimate = float(successes[-1] / n)
    return _Judged(
        estimate,
        float(low[-1]),
        float(high[-1]),
        n,
        lambda: _rate_forecast(estimate, threshold, alpha),
    )


def _rate_forecast(rate: float, threshold: float, alpha: float) -> tuple[int | None, int | None]:
    if rate == threshold:
        return None, None
    return (
        proportion_needed(rate, threshold, alpha, power=0.5),
        proportion_needed(rate, threshold, alpha, power=0.8),
    )


def _quantile_ranks(n: int, q: float, alpha: float) -> tuple[int | None, int | None]:
    """1-based ranks of the order statistics that bound the q-quantile (None: unbounded).

    Upper: the smallest r at which P(X <= x_(r)) > q is established. Lower: the largest r at
    which P(X < x_(r)) < q is (r - 1 samples below it).
    """
    half = 4 * math.sqrt(n * (math.log(1 / alpha) + math.log(n + 1))) + 100
    first, last = max(0, math.floor(q * n - half)), min(n, math.ceil(q * n + half))
    k = np.arange(first, last + 1, dtype=np.float64)
    # the tests at q itself, over every k of the window at once: no bisection needed
    above = proportion_rejects_below(k, np.full_like(k, n), q, alpha)
    below = proportion_rejects_above(k, np.full_like(k, n), q, alpha)
    reaching = np.nonzero(above & (k >= 1))[0]
    upper = first + int(reaching.min()) if reaching.size else None
    staying = np.nonzero(below & (k + 1 <= n))[0]
    lower = first + int(staying.max()) + 1 if staying.size else None
    return lower, upper


def _quantile_range(n: int, order: Order, q: float, alpha: float) -> tuple[float, float, float]:
    lower, upper = _quantile_ranks(n, q, alpha)
    middle = order(max(1, math.ceil(q * n)))
    return (
        (middle[0] + middle[1]) / 2,
        order(lower)[0] if lower is not None else -math.inf,
        order(upper)[1] if upper is not None else math.inf,
    )


def _quantile(
    evidence: Evidence, q: float, alpha: float, op: str, threshold: float
) -> tuple[_Judged, CriterionVerdict]:
    """`p_q <= T` is `P(X <= T) >= q`: a rate criterion on the indicator, exact."""
    assert evidence.order is not None
    n = evidence.n
    estimate, low, high = _quantile_range(n, evidence.order, q, alpha)
    if op in ("<=", "<"):
        k = evidence.below + (evidence.at if op == "<=" else 0)
        p_low, p_high = proportion_bounds(np.array([k]), np.array([n]), alpha)
        verdict: CriterionVerdict = (
            "PASS" if p_low[0] >= q else "FAIL" if p_high[0] < q else "INCONCLUSIVE"
        )
    else:
        k = evidence.below + (evidence.at if op == "<" else 0)
        p_low, p_high = proportion_bounds(np.array([k]), np.array([n]), alpha)
        verdict = "PASS" if p_high[0] < q else "FAIL" if p_low[0] >= q else "INCONCLUSIVE"
    rate = k / n
    return _Judged(estimate, low, high, n, lambda: _rate_forecast(rate, q, alpha)), verdict


def _relative_quantile(evidence: Evidence, q: float, alpha: float) -> _Judged:
    """The candidate's q-quantile over the API's, each from its own sequence at alpha / 2."""
    assert evidence.order is not None
    assert evidence.baseline_order is not None
    if evidence.baseline_n == 0:
        return _Judged(math.nan, -math.inf, math.inf, evidence.n, note="no API latencies yet")
    c_mid, c_low, c_high = _quantile_range(evidence.n, evidence.order, q, alpha / 2)
    p_mid, p_low, p_high = _quantile_range(
        evidence.baseline_n, evidence.baseline_order, q, alpha / 2
    )

    def ratio(a: float, b: float) -> float:
        if b <= 0 or not math.isfinite(b):
            return math.inf if b <= 0 else 0.0
        return a / b

    low = ratio(c_low, p_high) if math.isfinite(c_low) else 0.0
    high = ratio(c_high, p_low) if math.isfinite(c_high) else math.inf
    return _Judged(ratio(c_mid, p_mid), low, high, evidence.n)


def evaluate_criterion(
    criterion: Criterion, data: CriterionData, alpha: float, previous: Bounds | None = None
) -> CriterionResult:
    """One criterion's verdict, its bound on the good side at level alpha.

    `previous` is the interval of the last look at the same criterion: intersected with the
    current one, so a verdict reached stays while the data agree with it.
    """
    op, threshold = effective_threshold(criterion)

    def result(
        verdict: CriterionVerdict, judged: _Judged | None, needed: int | None, note: str = ""
    ) -> CriterionResult:
        open_ = judged is not None and verdict == "INCONCLUSIVE" and needed is None
        low_n, high_n = judged.needed if judged is not None and open_ else (None, None)
        return CriterionResult(
            name=criterion.name,
            metric=criterion.metric,
            stat=criterion.stat,
            mode=criterion.mode,
            op=op,
            threshold=threshold,
            critical=criterion.critical,
            verdict=verdict,
            estimate=_finite(judged.estimate) if judged else None,
            ci_low=_finite(judged.low) if judged else None,
            ci_high=_finite(judged.high) if judged else None,
            n=judged.n if judged else 0,
            needed_n=needed if needed is not None else high_n,
            needed_low=low_n if needed is None else None,
            note=note or (judged.note if judged else ""),
        )

    if CATALOG[criterion.metric].kind == "figure":
        if data.figure is None:
            return result("NO_DATA", None, None, "not measured or declared yet")
        point = _Judged(data.figure, data.figure, data.figure, 1)
        return result(compare(data.figure, data.figure, op, threshold), point, None)

    if data.never is not None:
        return result("NO_DATA", None, None, data.never)
    evidence = data.evidence
    if evidence is None and data.values is not None:
        evidence = values_evidence(criterion, data.values)
    if evidence is None or evidence.n == 0:
        return result("NO_DATA", None, criterion.min_samples, "no samples yet")
    judged, verdict = _judge(criterion, evidence, alpha, op, threshold)
    if previous is not None and previous.n <= judged.n:
        low, high = max(judged.low, previous.low), min(judged.high, previous.high)
        if low <= high:  # an empty intersection: the data contradict the earlier look
            judged = _Judged(judged.estimate, low, high, judged.n, judged.forecast, judged.note)
            if criterion.stat != "quantile" or criterion.mode == "relative":
                verdict = compare(low, high, op, threshold)
    if judged.n < criterion.min_samples:
        return result(
            "NO_DATA",
            judged,
            criterion.min_samples,
            f"{judged.n} of {criterion.min_samples} samples",
        )
    if verdict != "INCONCLUSIVE":
        return _decided(result(verdict, judged, None))
    if not math.isfinite(judged.low) and not math.isfinite(judged.high):
        more = max(MIN_N, criterion.min_samples)
        return result("INCONCLUSIVE", judged, more, judged.note or f"{judged.n} samples so far")
    needed = judged.needed[1]
    if needed is None or needed > AT_THE_MARGIN_N:
        return result("INCONCLUSIVE", _without_forecast(judged), None, AT_THE_MARGIN)
    return result("INCONCLUSIVE", judged, None)


def _without_forecast(judged: _Judged) -> _Judged:
    """The same figures without a forecast."""
    return _Judged(judged.estimate, judged.low, judged.high, judged.n, None, judged.note)


def _decided(result: CriterionResult) -> CriterionResult:
    """A decided criterion needs no more samples."""
    return CriterionResult(**{**result.__dict__, "needed_n": None, "needed_low": None})


def _judge(
    criterion: Criterion, evidence: Evidence, alpha: float, op: str, threshold: float
) -> tuple[_Judged, CriterionVerdict]:
    if criterion.stat == "quantile":
        assert criterion.q is not None
        if criterion.mode == "relative":
            judged = _relative_quantile(evidence, criterion.q, alpha)
            return judged, compare(judged.low, judged.high, op, threshold)
        return _quantile(evidence, criterion.q, alpha, op, threshold)
    if criterion.mode == "noise_adjusted":
        judged = _noise_adjusted(evidence, alpha, criterion.margin or 0.0)
    else:
        assert evidence.sums is not None
        if criterion.stat == "proportion":
            judged = _proportion(evidence.sums, alpha, op, threshold)
        else:
            judged = _mean(evidence.sums, alpha, op, threshold)
    return judged, compare(judged.low, judged.high, op, threshold)


IDLE_AFTER = timedelta(minutes=5)
RECENT = timedelta(hours=1)


@dataclass(frozen=True)
class Pace:
    """How fast pairs arrive lately; `idle_since` is set once traffic has stopped."""

    pairs_per_hour: float | None
    idle_since: datetime | None = None


def pace(
    recent_pairs: int,
    recent_hours: float,
    last_pair_at: datetime | None,
    now: datetime,
) -> Pace:
    """The recent arrival rate, or when traffic stopped.

    Traffic has stopped when nothing arrived for `IDLE_AFTER` and for ten of the recent gaps
    between pairs, whichever is longer: a slow use case is not called idle between its pairs.
    """
    if last_pair_at is None or recent_pairs == 0:
        return Pace(None)
    rate = recent_pairs / recent_hours if recent_hours > 0 else None
    gap = timedelta(hours=10 / rate) if rate else timedelta(0)
    if now - last_pair_at > max(IDLE_AFTER, gap):
        return Pace(None, last_pair_at)
    return Pace(rate)


def decide(
    criteria: CriteriaSet,
    data: dict[str, CriterionData],
    window_start: datetime | None,
    now: datetime,
    window_hours: float | None = None,
    previous: dict[str, Bounds] | None = None,
    last_pair_at: datetime | None = None,
    recent: Pace | None = None,
    pairs: int | None = None,
) -> Decision:
    """The verdict by the rules of SPEC §6, each criterion at the full alpha (see the module).

    The time to a decision is said at the `recent` pace of `pairs` when given, else at the
    rate over the whole window (`window_hours`).
    """
    previous = previous or {}
    results = [
        evaluate_criterion(c, data[c.name], criteria.alpha, previous.get(c.name))
        for c in criteria.criteria
    ]
    failed = [r for r in results if r.verdict == "FAIL"]
    if failed:
        failed.sort(key=lambda r: not r.critical)
        reasons = [
            f"{'critical ' if r.critical else ''}criterion {r.name!r} fails: "
            f"{CATALOG[r.metric].label} {_fmt(r.estimate)} "
            f"(interval {_interval(r)}) against {r.op} {_fmt(r.threshold)}"
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
    if recent is None:
        stopped = last_pair_at is not None and now - last_pair_at > timedelta(minutes=30)
        recent = Pace(None, last_pair_at) if stopped else None
    reasons = [
        _open_reason(r, _criterion_rate(r, window_hours, recent, pairs), recent, now)
        for r in results
        if r.verdict != "PASS"
    ]
    if elapsed < criteria.min_duration:
        reasons.append(f"min_duration needs {_duration(criteria.min_duration - elapsed)} more")
    return Decision("INSUFFICIENT_DATA", results, reasons)


def _criterion_rate(
    r: CriterionResult, window_hours: float | None, recent: Pace | None, pairs: int | None
) -> float | None:
    """Samples per hour this criterion gets; some draw on a subset (re-asks, a segment)."""
    if not r.n:
        return None
    if recent is not None and recent.pairs_per_hour and pairs:
        return recent.pairs_per_hour * r.n / pairs
    if recent is None and window_hours:
        return r.n / window_hours
    return None


def needed_words(needed_low: int | None, needed_n: int, n: int) -> str:
    """'about 1,200 to 1,500 samples needed in total, 300 so far': the one way it is said."""
    low = needed_low if needed_low is not None and needed_low < needed_n else needed_n
    amount = f"{low:,} to {needed_n:,}" if low < needed_n else f"{needed_n:,}"
    return f"about {amount} samples needed in total, {n:,} so far"


def _open_reason(r: CriterionResult, rate: float | None, recent: Pace | None, now: datetime) -> str:
    """What an undecided criterion still needs, in words."""
    if r.verdict == "NO_DATA" and CATALOG[r.metric].kind == "figure":
        return f"{r.name!r}: {CATALOG[r.metric].label} is not measured yet"
    if r.needed_n is None:
        return f"{r.name!r} is {r.verdict}: {r.note or AT_THE_MARGIN}"
    note = f"; {r.note}" if r.note else ""
    if r.needed_n <= r.n:
        return (
            f"{r.name!r} is {r.verdict}: a few more samples needed (it has the "
            f"{r.needed_n:,} a decision usually takes){note}"
        )
    eta = ""
    if recent is not None and recent.idle_since is not None:
        since = recent.idle_since
        at = f"{since:%H:%M}" if since.date() == now.date() else f"{since:%Y-%m-%d %H:%M}"
        eta = f" (no traffic since {at} UTC)"
    elif rate:
        eta = f" ({_pace(timedelta(hours=(r.needed_n - r.n) / rate))} at the recent rate)"
    return f"{r.name!r} is {r.verdict}: {needed_words(r.needed_low, r.needed_n, r.n)}{eta}{note}"


def _interval(r: CriterionResult) -> str:
    if r.ci_low is None and r.ci_high is not None:
        return f"at most {_fmt(r.ci_high)}"
    if r.ci_high is None and r.ci_low is not None:
        return f"{_fmt(r.ci_low)} or more"
    return f"{_fmt(r.ci_low)}..{_fmt(r.ci_high)}"


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}"


def _pace(delta: timedelta) -> str:
    """How long at the recent rate, in words."""
    if delta < timedelta(minutes=1):
        return "under a minute"
    return f"about {_duration(delta)}"


def _duration(delta: timedelta) -> str:
    seconds = max(delta.total_seconds(), 0)
    if seconds < 60:
        return "less than a minute"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
