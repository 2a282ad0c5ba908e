"""Queries of the scoring: pairs to score, scores written once or replaced. Never commits."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, distinct, func, select
from sqlalchemy.orm import Session

from storage import aggregates
from storage.bulk import insert_rows
from storage.models import NoiseReask, RequestPair, Score, utcnow

_CHUNK = 500


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def load_pairs(
    session: Session, pair_ids: Sequence[str]
) -> list[tuple[RequestPair, NoiseReask | None]]:
    """The stored pairs among `pair_ids` with their noise re-asks, in the order asked."""
    found: dict[str, tuple[RequestPair, NoiseReask | None]] = {}
    for chunk in _chunks(pair_ids):
        query = (
            select(RequestPair, NoiseReask)
            .outerjoin(NoiseReask, NoiseReask.pair_id == RequestPair.id)
            .where(RequestPair.id.in_(chunk))
        )
        for pair, noise in session.execute(query).tuples():
            found[pair.id] = (pair, noise)
    return [found[pair_id] for pair_id in pair_ids if pair_id in found]


def scored_pair_ids(session: Session, pair_ids: Sequence[str]) -> set[str]:
    """Those of `pair_ids` that already have scores."""
    scored: set[str] = set()
    for chunk in _chunks(pair_ids):
        query = select(Score.pair_id).where(Score.pair_id.in_(chunk)).distinct()
        scored.update(session.scalars(query))
    return scored


def insert_scores(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Insert score rows, skipping any (pair, metric) already stored; how many were new."""
    if not rows:
        return 0
    now = utcnow()
    # RETURNING rather than rowcount: psycopg reports -1 for skipped conflicting rows, and
    # only the rows written now may be aggregated.
    written = insert_rows(
        session.connection(),
        Score,
        [{"created_at": now, **row} for row in rows],
        conflict=["pair_id", "metric"],
        returning=[Score.pair_id, Score.metric, Score.value],
    )
    inserted = [(row.pair_id, row.metric, row.value) for row in written]
    # only the rows written now count: a pair scored twice is aggregated once
    aggregates.add_scores(session, inserted)
    return len(inserted)


def delete_scores(
    session: Session, pair_ids: Sequence[str], metrics: Sequence[str] | None = None
) -> int:
    """Remove the scores of `pair_ids` (only `metrics`, when given); how many went."""
    removed: list[tuple[str, str, float | None]] = []
    for chunk in _chunks(pair_ids):
        statement = delete(Score).where(Score.pair_id.in_(chunk))
        if metrics is not None:
            statement = statement.where(Score.metric.in_(metrics))
        returning = statement.returning(Score.pair_id, Score.metric, Score.value)
        removed += session.execute(returning).tuples().all()
    aggregates.remove_scores(session, removed)
    return len(removed)


def pair_ids_for(
    session: Session,
    use_case: str,
    since: datetime | None = None,
    unscored: bool = False,
) -> list[str]:
    """Ids of a use case's pairs, oldest first (received after `since`; only unscored ones)."""
    query = select(RequestPair.id).where(RequestPair.use_case == use_case)
    if since is not None:
        query = query.where(RequestPair.created_at >= since)
    if unscored:
        query = query.where(~select(Score.id).where(Score.pair_id == RequestPair.id).exists())
    return list(session.scalars(query.order_by(RequestPair.created_at, RequestPair.id)))


def metric_values(session: Session, metrics: Sequence[str]) -> dict[str, dict[str, list[float]]]:
    """Stored values of `metrics` (errors left out), by use case and metric."""
    query = (
        select(RequestPair.use_case, Score.metric, Score.value)
        .join(RequestPair, RequestPair.id == Score.pair_id)
        .where(Score.metric.in_(metrics), Score.value.is_not(None))
    )
    values: dict[str, dict[str, list[float]]] = {}
    for use_case, metric, value in session.execute(query).tuples():
        if value is not None:
            values.setdefault(use_case, {}).setdefault(metric, []).append(value)
    return values


def count_scored_pairs(session: Session) -> int:
    """How many pairs have scores."""
    return int(session.scalar(select(func.count(distinct(Score.pair_id)))) or 0)
