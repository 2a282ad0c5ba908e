"""Queries. Functions take a session and never commit: the caller's unit of work does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.models import NoiseReask, RequestPair, UseCase
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
