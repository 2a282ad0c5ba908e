"""`switchover criteria backtest`: recorded per-pair values judged exactly as the service would.

The values of each run are read in arrival order; after every `look_every` pairs the evidence
is built as the aggregates hold it (sums at each 10-minute bucket end when a `t` column gives
arrival times, else one bucket per look), the engine judges it, and the interval carries over
to the next look as the stored verdict does in the service. It is also how the statistics are
benchmarked (`bench/decision_efficiency.py`).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from criteria.errors import InvalidCriteria
from criteria.readiness.engine import (
    Bounds,
    CriterionData,
    CriterionResult,
    Decision,
    Evidence,
    Sums,
    decide,
    quantile_evidence,
)
from criteria.readiness.evidence import series_of
from criteria.readiness.schema import CriteriaSet, Criterion
from criteria.readiness.sequences import FloatArray
from evaluators.catalog import CATALOG
from storage.aggregates import BUCKET_S

IntArray = NDArray[np.int64]


@dataclass
class Run:
    """One independent stream of pairs: a column of values per metric (NaN: not measured)."""

    columns: dict[str, FloatArray]
    t: FloatArray | None = None

    @property
    def pairs(self) -> int:
        """How many pairs the run holds."""
        return max((len(v) for v in self.columns.values()), default=0)


@dataclass
class CriterionOutcome:
    """When a criterion first reached PASS and FAIL, in pairs at that look (None: never)."""

    name: str
    verdict: str
    first_pass_n: int | None = None
    first_fail_n: int | None = None


@dataclass
class RunOutcome:
    """One run's verdict at its last look, and each criterion's first decisions."""

    run: str
    verdict: str
    pairs: int
    criteria: list[CriterionOutcome] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def read_values(path: Path) -> dict[str, Run]:
    """Runs from a CSV file; InvalidCriteria names the line and the column."""
    rows: dict[str, list[dict[str, float]]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        unknown = [c for c in columns if c not in ("run", "t") and c not in CATALOG]
        if unknown:
            raise InvalidCriteria(f"{path}:1: unknown column(s) {', '.join(unknown)}")
        for line, record in enumerate(reader, start=2):
            values: dict[str, float] = {}
            for column, text in record.items():
                if column is None:
                    raise InvalidCriteria(f"{path}:{line}: more cells than columns")
                if column == "run" or text is None or text.strip() == "":
                    continue
                values[column] = _number(path, line, column, text)
            rows.setdefault(record.get("run") or "1", []).append(values)
    runs = {}
    for name, records in rows.items():
        metrics = [c for c in columns if c not in ("run", "t")]
        built = {
            m: np.asarray([r.get(m, math.nan) for r in records], dtype=np.float64) for m in metrics
        }
        times = None
        if "t" in columns:
            times = np.asarray([r.get("t", math.nan) for r in records], dtype=np.float64)
        runs[name] = Run(built, times)
    return runs


def _number(path: Path, line: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidCriteria(f"{path}:{line}: {column}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise InvalidCriteria(f"{path}:{line}: {column}: {text!r} is not a finite number")
    return value


def check_columns(criteria: CriteriaSet, runs: Mapping[str, Run]) -> list[str]:
    """Metrics the criteria need that no row has (a criterion that would never decide)."""
    seen = {
        name
        for run in runs.values()
        for name, values in run.columns.items()
        if np.any(~np.isnan(values))
    }
    needed = {m for c in criteria.criteria for m in series_of(c)}
    return sorted(m for m in needed if CATALOG[m].kind == "pair" and m not in seen)


@dataclass
class _Series:
    """One metric's samples of a run: pair index, bucket, value, and running sums."""

    index: IntArray
    bucket: IntArray
    values: FloatArray
    total: FloatArray
    total_sq: FloatArray

    @classmethod
    def of(cls, values: FloatArray, buckets: IntArray) -> _Series:
        present = ~np.isnan(values)
        index = np.nonzero(present)[0]
        kept = values[present]
        return cls(index, buckets[present], kept, np.cumsum(kept), np.cumsum(kept * kept))

    def count(self, look: int) -> int:
        """Samples among the first `look` pairs."""
        return int(np.searchsorted(self.index, look))

    def sums_at(self, ends: IntArray, m: int) -> Sums:
        """Cumulative sums at the bucket ends (bucket ids), counting the first m samples."""
        if m == 0:
            zeros = np.zeros(len(ends))
            return Sums(zeros, zeros, zeros)
        n = np.searchsorted(self.bucket[:m], ends, side="right")
        last = np.maximum(n - 1, 0)
        return Sums(
            n.astype(np.float64),
            np.where(n > 0, self.total[last], 0.0),
            np.where(n > 0, self.total_sq[last], 0.0),
        )


class _Prepared:
    """A criterion's series of one run, ready to give the evidence at any look."""

    def __init__(self, criterion: Criterion, run: Run, buckets: IntArray) -> None:
        self.criterion = criterion
        empty = np.full(run.pairs, np.nan)
        self.series = [
            _Series.of(run.columns.get(name, empty), buckets) for name in series_of(criterion)
        ]

    def evidence(self, look: int) -> Evidence:
        criterion = self.criterion
        counts = [s.count(look) for s in self.series]
        first = self.series[0]
        if criterion.stat == "quantile":
            base = self.series[1].values[: counts[1]] if len(self.series) > 1 else None
            return quantile_evidence(criterion, first.values[: counts[0]], base)
        pairs = list(zip(self.series, counts, strict=True))
        ends = np.unique(np.concatenate([s.bucket[:m] for s, m in pairs]))
        sums = [s.sums_at(ends, m) for s, m in pairs]
        if criterion.mode == "noise_adjusted":
            return Evidence(n=counts[0], sums=sums[0], noise=sums[1])
        return Evidence(n=counts[0], sums=sums[0])


def _bounds(results: Iterable[CriterionResult]) -> dict[str, Bounds]:
    return {
        r.name: Bounds(
            low=-math.inf if r.ci_low is None else r.ci_low,
            high=math.inf if r.ci_high is None else r.ci_high,
            n=r.n,
        )
        for r in results
    }


def _time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def backtest_run(
    name: str,
    criteria: CriteriaSet,
    run: Run,
    look_every: int,
    stop: Callable[[Decision], bool] | None = None,
) -> RunOutcome:
    """Judge one run after every `look_every` pairs (and at its end); `stop` ends it early."""
    pairs = run.pairs
    columns = run.columns
    times = run.t
    if times is not None and np.any(~np.isnan(times)):
        order = np.argsort(np.where(np.isnan(times), np.inf, times), kind="stable")
        columns = {k: v[order] for k, v in columns.items()}
        times = times[order]
        buckets = np.floor(np.nan_to_num(times, nan=np.nanmax(times)) / BUCKET_S).astype(np.int64)
        start, end_of = _time(float(np.nanmin(times))), times
    else:
        times = None
        buckets = np.arange(pairs, dtype=np.int64) // look_every
        # no arrival times: min_duration is taken as met, as if the traffic had spanned it
        start, end_of = datetime(1970, 1, 1, tzinfo=UTC), None
    sorted_run = Run(columns, times)
    prepared = {
        c.name: _Prepared(c, sorted_run, buckets)
        for c in criteria.criteria
        if CATALOG[c.metric].kind == "pair"
    }
    outcomes = {c.name: CriterionOutcome(c.name, "NO_DATA") for c in criteria.criteria}
    looks = list(range(look_every, pairs + 1, look_every))
    if not looks or looks[-1] != pairs:
        looks.append(pairs)
    previous: dict[str, Bounds] = {}
    decision: Decision | None = None
    for look in looks:
        data: dict[str, CriterionData] = {}
        for criterion in criteria.criteria:
            if criterion.name in prepared:
                data[criterion.name] = CriterionData(
                    evidence=prepared[criterion.name].evidence(look)
                )
            else:
                figures = columns.get(criterion.metric, np.full(pairs, np.nan))[:look]
                known = figures[~np.isnan(figures)]
                data[criterion.name] = CriterionData(
                    figure=float(known[-1]) if len(known) else None
                )
        if end_of is not None:
            now = _time(float(np.nanmax(end_of[:look])))
        else:
            now = datetime(9999, 1, 1, tzinfo=UTC)
        hours = (now - start).total_seconds() / 3600 if end_of is not None else None
        decision = decide(criteria, data, start, now, hours or None, previous=previous)
        previous = _bounds(decision.criteria)
        for result in decision.criteria:
            outcome = outcomes[result.name]
            outcome.verdict = result.verdict
            if result.verdict == "PASS" and outcome.first_pass_n is None:
                outcome.first_pass_n = look
            if result.verdict == "FAIL" and outcome.first_fail_n is None:
                outcome.first_fail_n = look
        if stop is not None and stop(decision):
            pairs = look
            break
    assert decision is not None
    return RunOutcome(
        run=name,
        verdict=decision.verdict,
        pairs=pairs,
        criteria=list(outcomes.values()),
        reasons=decision.reasons,
    )


def backtest(
    criteria: CriteriaSet, runs: Mapping[str, Run], look_every: int = 50
) -> list[RunOutcome]:
    """Every run of the file, judged as the service would."""
    if look_every < 1:
        raise InvalidCriteria("--look-every: must be at least 1")
    return [backtest_run(name, criteria, run, look_every) for name, run in runs.items()]
