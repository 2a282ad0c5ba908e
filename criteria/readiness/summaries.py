"""Distributions and timelines of a use case's scores, so charts need not pull every pair."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from criteria.readiness.schemas import (
    DistributionsRead,
    MetricDistributionRead,
    TimelinePointRead,
    TimelineRead,
)
from criteria.readiness.sequences import FloatArray
from evaluators.catalog import BINARY, CATALOG
from storage.models import RequestPair, Score

# Unbounded metrics (latencies, ratios) have long tails: the histogram stops at this quantile
# and counts the rest as `overflow`, so one timeout does not squash every other bar.
TAIL_QUANTILE = 0.99


def _mine(use_case: str, candidate: str | None) -> list[Any]:
    found = [RequestPair.use_case == use_case]
    if candidate is not None:
        found.append(RequestPair.candidate_name == candidate)
    return found


def _values(session: Session, use_case: str, metric: str, candidate: str | None) -> FloatArray:
    query = (
        select(Score.value)
        .join(RequestPair, RequestPair.id == Score.pair_id)
        .where(*_mine(use_case, candidate), Score.metric == metric, Score.value.is_not(None))
    )
    values = np.asarray(session.scalars(query).all(), dtype=np.float64)
    return values[np.isfinite(values)]


def bin_edges(samples: Sequence[FloatArray], bins: int, bounded: bool) -> FloatArray:
    """Common edges for the samples: min to max, or to the tail quantile when unbounded."""
    present = [s for s in samples if len(s)]
    if not present:
        return np.empty(0)
    low = min(float(s.min()) for s in present)
    if bounded:
        high = max(float(s.max()) for s in present)
    else:
        high = max(float(np.quantile(s, TAIL_QUANTILE)) for s in present)
    if high <= low:
        low, high = low - 0.5, low + 0.5
    return np.linspace(low, high, bins + 1)


def _quantile(values: FloatArray, q: float) -> float | None:
    return float(np.quantile(values, q)) if len(values) else None


def describe(metric: str, values: FloatArray, edges: FloatArray) -> MetricDistributionRead:
    """One metric's summary figures and histogram over `edges`."""
    info = CATALOG[metric]
    if len(values) and len(edges):
        counts = np.histogram(np.clip(values, edges[0], None), bins=edges)[0]
        overflow = int(np.count_nonzero(values > edges[-1]))
    else:
        counts, overflow = np.zeros(max(len(edges) - 1, 0), dtype=np.int64), 0
    return MetricDistributionRead(
        metric=metric,
        label=info.label,
        better=info.better,
        binary=metric in BINARY,
        n=len(values),
        mean=float(values.mean()) if len(values) else None,
        p50=_quantile(values, 0.5),
        p90=_quantile(values, 0.9),
        p95=_quantile(values, 0.95),
        p99=_quantile(values, 0.99),
        min=float(values.min()) if len(values) else None,
        max=float(values.max()) if len(values) else None,
        edges=[float(e) for e in edges],
        counts=[int(c) for c in counts],
        overflow=overflow,
    )


def distributions(
    session: Session,
    use_case: str,
    metrics: Sequence[str],
    bins: int,
    shared: bool,
    candidate: str | None = None,
) -> DistributionsRead:
    """Histograms of the metrics' per-pair scores; `shared` puts them on the same edges.

    `candidate` restricts them to its pairs (None: every pair of the use case).
    """
    samples = {
        metric: _values(session, use_case, metric, candidate) for metric in dict.fromkeys(metrics)
    }

    def bounded(names: Sequence[str]) -> bool:
        return all(CATALOG[name].high is not None for name in names)

    if shared:
        edges = bin_edges(list(samples.values()), bins, bounded(list(samples)))
        rows = [describe(m, v, edges) for m, v in samples.items()]
    else:
        rows = [describe(m, v, bin_edges([v], bins, bounded([m]))) for m, v in samples.items()]
    return DistributionsRead(use_case=use_case, candidate=candidate, metrics=rows)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def timeline(
    session: Session, use_case: str, metric: str, buckets: int, candidate: str | None = None
) -> TimelineRead:
    """The metric's median and 90th percentile in equal time buckets over the pairs' window."""
    query = (
        select(RequestPair.created_at, Score.value)
        .join(RequestPair, RequestPair.id == Score.pair_id)
        .where(*_mine(use_case, candidate), Score.metric == metric, Score.value.is_not(None))
        .order_by(RequestPair.created_at)
    )
    rows = [(_aware(at), value) for at, value in session.execute(query).tuples()]
    points: list[TimelinePointRead] = []
    if rows:
        seconds = np.array([(at - rows[0][0]).total_seconds() for at, _ in rows])
        values = np.array([value for _, value in rows], dtype=np.float64)
        span = max(float(seconds[-1]), 1e-9)
        index = np.minimum((seconds / span * buckets).astype(int), buckets - 1)
        for bucket in np.unique(index):
            chunk = values[index == bucket]
            start = rows[0][0].timestamp() + span * bucket / buckets
            points.append(
                TimelinePointRead(
                    start=datetime.fromtimestamp(start, UTC),
                    end=datetime.fromtimestamp(start + span / buckets, UTC),
                    n=len(chunk),
                    mean=float(chunk.mean()),
                    p50=float(np.quantile(chunk, 0.5)),
                    p90=float(np.quantile(chunk, 0.9)),
                )
            )
    return TimelineRead(
        use_case=use_case,
        candidate=candidate,
        metric=metric,
        label=CATALOG[metric].label,
        points=points,
    )
