"""Queries. Functions take a session and never commit: the caller's unit of work does."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.models import (
    ApiToken,
    CapacityRun,
    CriteriaVersion,
    Decision,
    NoiseReask,
    RequestPair,
    Score,
    UseCase,
)
from storage.schemas import AnswerFields, PairCreate


def _insert_ignoring_duplicates(session: Session, model: Any, values: dict[str, Any]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING; True when the row is new."""
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    key = next(iter(model.__table__.primary_key.columns))
    statement = module.insert(model).values(**values).on_conflict_do_nothing().returning(key)
    # RETURNING rather than rowcount: psycopg reports -1 for a skipped conflicting row.
    return session.execute(statement).first() is not None


def _side(prefix: str, answer: AnswerFields) -> dict[str, Any]:
    fields = answer.model_dump(exclude={"error", "error_kind"})
    row = {f"{prefix}_{key}": value for key, value in fields.items()}
    if prefix == "candidate":
        row["candidate_error"] = answer.error
        row["candidate_error_kind"] = answer.error_kind
    return row


def insert_pair(session: Session, pair: PairCreate) -> bool:
    """Store a pair (and its noise re-ask) once; False when this id was already stored."""
    _insert_ignoring_duplicates(session, UseCase, {"name": pair.use_case})
    values = pair.model_dump(exclude={"primary", "candidate", "noise"})
    values["status"] = pair.status
    values.update(_side("primary", pair.primary))
    values.update(_side("candidate", pair.candidate))
    # The primary's status code column is required: a mirrored answer always has one.
    values["primary_status_code"] = pair.primary.status_code or 200
    if not _insert_ignoring_duplicates(session, RequestPair, values):
        return False
    if pair.noise is not None:
        session.add(NoiseReask(pair_id=pair.id, **pair.noise.model_dump()))
    return True


def count_pairs(session: Session, use_case: str | None = None) -> int:
    """How many pairs are stored (for one use case, or all)."""
    query = select(func.count()).select_from(RequestPair)
    if use_case is not None:
        query = query.where(RequestPair.use_case == use_case)
    return int(session.scalar(query) or 0)


def list_pairs(
    session: Session, use_case: str | None = None, limit: int = 100
) -> Sequence[RequestPair]:
    """The newest pairs first."""
    query = select(RequestPair).order_by(RequestPair.created_at.desc()).limit(limit)
    if use_case is not None:
        query = query.where(RequestPair.use_case == use_case)
    return session.scalars(query).all()


def get_noise(session: Session, pair_id: str) -> NoiseReask | None:
    """The primary's re-ask for a pair, if one was made."""
    return session.get(NoiseReask, pair_id)


def add_criteria_version(
    session: Session, use_case: str, text: str, author: str
) -> CriteriaVersion:
    """Store a new version of a use case's criteria (numbered 1, 2, …)."""
    latest = session.scalar(
        select(func.max(CriteriaVersion.version)).where(CriteriaVersion.use_case == use_case)
    )
    row = CriteriaVersion(use_case=use_case, version=(latest or 0) + 1, text=text, author=author)
    session.add(row)
    session.flush()
    return row


def latest_criteria(session: Session, use_case: str) -> CriteriaVersion | None:
    """The criteria version in force for a use case."""
    return session.scalars(
        select(CriteriaVersion)
        .where(CriteriaVersion.use_case == use_case)
        .order_by(CriteriaVersion.version.desc())
        .limit(1)
    ).first()


def add_decision(session: Session, decision: Decision) -> Decision:
    """Store an evaluated verdict."""
    session.add(decision)
    session.flush()
    return decision


def list_decisions(session: Session, use_case: str, limit: int = 100) -> Sequence[Decision]:
    """Stored verdicts of a use case, newest first."""
    return session.scalars(
        select(Decision)
        .where(Decision.use_case == use_case)
        .order_by(Decision.evaluated_at.desc(), Decision.id.desc())
        .limit(limit)
    ).all()


def pair_window(session: Session, use_case: str) -> tuple[int, datetime | None, datetime | None]:
    """How many pairs a use case has, and when the first and the last were received."""
    count, first, last = session.execute(
        select(
            func.count(), func.min(RequestPair.created_at), func.max(RequestPair.created_at)
        ).where(RequestPair.use_case == use_case)
    ).one()
    return int(count), first, last


def metric_rows(
    session: Session, use_case: str, metrics: Sequence[str], feature: str | None = None
) -> Sequence[tuple[str, str, float]]:
    """(pair id, metric, value) of the scored metrics, in the order the requests arrived."""
    query = (
        select(Score.pair_id, Score.metric, Score.value)
        .join(RequestPair, RequestPair.id == Score.pair_id)
        .where(
            RequestPair.use_case == use_case,
            Score.metric.in_(metrics),
            Score.value.is_not(None),
        )
        .order_by(RequestPair.created_at, RequestPair.id)
    )
    if feature is not None:
        query = query.where(RequestPair.feature == feature)
    return session.execute(query).tuples().all()  # type: ignore[return-value]


def add_token(session: Session, name: str, role: str, token_sha256: str) -> ApiToken:
    """Store an API token's hash."""
    row = ApiToken(name=name, role=role, token_sha256=token_sha256)
    session.add(row)
    session.flush()
    return row


def token_by_hash(session: Session, token_sha256: str) -> ApiToken | None:
    """The token with this hash, if any."""
    return session.scalars(select(ApiToken).where(ApiToken.token_sha256 == token_sha256)).first()


def add_capacity_run(session: Session, run: CapacityRun) -> CapacityRun:
    """Store a replay run."""
    session.add(run)
    session.flush()
    return run


def list_capacity_runs(session: Session, use_case: str, limit: int = 50) -> Sequence[CapacityRun]:
    """Replay runs of a use case, newest first."""
    return session.scalars(
        select(CapacityRun)
        .where(CapacityRun.use_case == use_case)
        .order_by(CapacityRun.started_at.desc(), CapacityRun.id.desc())
        .limit(limit)
    ).all()


def captured_requests(
    session: Session, use_case: str, limit: int
) -> Sequence[tuple[datetime, str, bool, str]]:
    """(received at, endpoint, stream, request body) of the newest stored requests, oldest first."""
    rows = (
        session.execute(
            select(
                RequestPair.created_at,
                RequestPair.endpoint,
                RequestPair.stream,
                RequestPair.request_body,
            )
            .where(RequestPair.use_case == use_case, RequestPair.request_body.is_not(None))
            .order_by(RequestPair.created_at.desc())
            .limit(limit)
        )
        .tuples()
        .all()
    )
    return list(reversed(rows))  # type: ignore[arg-type]


def traffic_summary(session: Session, use_case: str) -> tuple[float | None, int, int]:
    """Summed `cost.primary_usd`, how many pairs have it, and the busiest minute's pair count."""
    total, priced = session.execute(
        select(func.sum(Score.value), func.count(Score.value))
        .join(RequestPair, RequestPair.id == Score.pair_id)
        .where(RequestPair.use_case == use_case, Score.metric == "cost.primary_usd")
    ).one()
    times = session.scalars(
        select(RequestPair.created_at).where(RequestPair.use_case == use_case)
    ).all()
    per_minute: dict[tuple[int, ...], int] = {}
    for moment in times:
        key = moment.timetuple()[:5]
        per_minute[key] = per_minute.get(key, 0) + 1
    busiest = max(per_minute.values(), default=0)
    return (float(total) if total is not None else None), int(priced or 0), busiest
