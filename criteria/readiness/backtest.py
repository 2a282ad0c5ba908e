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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from criteria.errors import InvalidCriteria
from criteria.readiness.engine import (
    Bounds,
    CriterionData,
    CriterionResult,
    Decision,
    decide,
)
from criteria.readiness.evidence import raw_evidence, series_of
from criteria.readiness.schema import CriteriaSet
from evaluators.catalog import CATALOG
from storage.aggregates import BUCKET_S


@dataclass
class Row:
    """One pair's recorded values: metric name -> value (absent: not measured)."""

    values: dict[str, float]
    t: float | None = None


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


def read_values(path: Path) -> dict[str, list[Row]]:
    """Runs of rows from a CSV file; InvalidCriteria names the line and the column."""
    runs: dict[str, list[Row]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        unknown = [c for c in columns if c not in ("run", "t") and c not in CATALOG]
        if unknown:
            raise InvalidCriteria(f"{path}:1: unknown column(s) {', '.join(unknown)}")
        for line, record in enumerate(reader, start=2):
            values: dict[str, float] = {}
            for column, text in record.items():
                if column in ("run", "t") or text is None or text.strip() == "":
                    continue
                values[column] = _number(path, line, column, text)
            t = record.get("t")
            row = Row(values, _number(path, line, "t", t) if t not in (None, "") else None)
            runs.setdefault(record.get("run") or "1", []).append(row)
    return runs


def _number(path: Path, line: int, column: str, text: str | None) -> float:
    try:
        value = float(text or "")
    except ValueError:
        raise InvalidCriteria(f"{path}:{line}: {column}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise InvalidCriteria(f"{path}:{line}: {column}: {text!r} is not a finite number")
    return value


def _needed_columns(criteria: CriteriaSet) -> set[str]:
    return {m for c in criteria.criteria for m in series_of(c)}


def check_columns(criteria: CriteriaSet, runs: dict[str, list[Row]]) -> list[str]:
    """Metrics the criteria need that no row has (a criterion that would never decide)."""
    seen = {name for rows in runs.values() for row in rows for name in row.values}
    return sorted(
        m for m in _needed_columns(criteria) if CATALOG[m].kind == "pair" and m not in seen
    )


def judge_at(
    criteria: CriteriaSet,
    rows: Sequence[Row],
    look_every: int,
    previous: dict[str, Bounds] | None = None,
) -> Decision:
    """The engine's decision over `rows` (one look), given the last look's intervals."""
    data: dict[str, CriterionData] = {}
    for criterion in criteria.criteria:
        if CATALOG[criterion.metric].kind == "figure":
            figures = [r.values[criterion.metric] for r in rows if criterion.metric in r.values]
            data[criterion.name] = CriterionData(figure=figures[-1] if figures else None)
            continue
        series: dict[str, tuple[list[int], list[float]]] = {}
        for index, row in enumerate(rows):
            bucket = math.floor(row.t / BUCKET_S) if row.t is not None else index // look_every
            for name in series_of(criterion):
                if name in row.values:
                    buckets, values = series.setdefault(name, ([], []))
                    buckets.append(bucket)
                    values.append(row.values[name])
        data[criterion.name] = CriterionData(evidence=raw_evidence(criterion, series))
    start, end = _times(rows)
    hours = (end - start).total_seconds() / 3600 if end > start else None
    return decide(criteria, data, start, end, hours, previous=previous)


def _times(rows: Sequence[Row]) -> tuple[datetime, datetime]:
    times = [r.t for r in rows if r.t is not None]
    if not times:
        # no arrival times: min_duration is taken as met, as if the traffic spanned it
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        return epoch, datetime(9999, 1, 1, tzinfo=UTC)
    return datetime.fromtimestamp(min(times), UTC), datetime.fromtimestamp(max(times), UTC)


def _bounds(results: Iterable[CriterionResult]) -> dict[str, Bounds]:
    return {
        r.name: Bounds(
            low=-math.inf if r.ci_low is None else r.ci_low,
            high=math.inf if r.ci_high is None else r.ci_high,
            n=r.n,
        )
        for r in results
    }


def backtest_run(
    name: str, criteria: CriteriaSet, rows: Sequence[Row], look_every: int
) -> RunOutcome:
    """Judge one run after every `look_every` pairs (and at its end)."""
    if any(r.t is not None for r in rows):
        rows = sorted(rows, key=lambda r: r.t if r.t is not None else math.inf)
    outcomes = {c.name: CriterionOutcome(c.name, "NO_DATA") for c in criteria.criteria}
    looks = list(range(look_every, len(rows) + 1, look_every))
    if not looks or looks[-1] != len(rows):
        looks.append(len(rows))
    previous: dict[str, Bounds] = {}
    decision: Decision | None = None
    for look in looks:
        decision = judge_at(criteria, rows[:look], look_every, previous)
        previous = _bounds(decision.criteria)
        for result in decision.criteria:
            outcome = outcomes[result.name]
            outcome.verdict = result.verdict
            if result.verdict == "PASS" and outcome.first_pass_n is None:
                outcome.first_pass_n = look
            if result.verdict == "FAIL" and outcome.first_fail_n is None:
                outcome.first_fail_n = look
    assert decision is not None
    return RunOutcome(
        run=name,
        verdict=decision.verdict,
        pairs=len(rows),
        criteria=list(outcomes.values()),
        reasons=decision.reasons,
    )


def backtest(
    criteria: CriteriaSet, runs: dict[str, list[Row]], look_every: int = 50
) -> list[RunOutcome]:
    """Every run of the file, judged as the service would."""
    if look_every < 1:
        raise InvalidCriteria("--look-every: must be at least 1")
    return [backtest_run(name, criteria, rows, look_every) for name, rows in runs.items()]
