"""Stored pairs for the scoring tests, written through the real repository."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import select

from shadow.simulator.prompts import PromptItem
from storage.db import make_engine, session_scope
from storage.models import Score
from storage.repository import insert_pair
from storage.schemas import AnswerFields, PairCreate


def pair_create(
    primary: str | None,
    candidate: str | None,
    *,
    use_case: str = "scored",
    request: dict[str, Any] | None = None,
    noise: str | None = None,
    candidate_error: str | None = None,
    pair_id: str | None = None,
) -> PairCreate:
    """A complete pair as a shadow job would store it."""
    body = orjson.dumps(
        request or {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello?"}]}
    ).decode()
    return PairCreate(
        id=pair_id or str(uuid.uuid4()),
        use_case=use_case,
        endpoint="chat.completions",
        stream=False,
        created_at=datetime.now(UTC),
        request_body=body,
        request_sha256="0" * 64,
        primary_model="gpt-4o-mini",
        primary_request_id=None,
        primary=AnswerFields(
            status_code=200,
            text=primary,
            latency_ms=120.0,
            ttft_ms=120.0,
            prompt_tokens=1000,
            completion_tokens=200,
        ),
        candidate_model="cand-model",
        candidate=AnswerFields(
            status_code=500 if candidate_error else 200,
            text=candidate,
            latency_ms=180.0,
            ttft_ms=180.0,
            prompt_tokens=1000,
            completion_tokens=180,
            error="boom" if candidate_error else None,
            error_kind=candidate_error,
        ),
        noise=None if noise is None else AnswerFields(status_code=200, text=noise, latency_ms=110),
    )


def prompt_pair(item: PromptItem, variant: str = "paraphrase", **kwargs: Any) -> PairCreate:
    """A pair whose primary gave the item's reference and the candidate `variant`."""
    request: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [m.model_dump() for m in item.messages],
    }
    if item.response_format:
        request["response_format"] = item.response_format
    return pair_create(str(item.reference), str(item.answer(variant)), request=request, **kwargs)  # type: ignore[arg-type]


def store(url: str, *pairs: PairCreate) -> list[str]:
    """Write pairs with the repository, committed."""
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            for pair in pairs:
                insert_pair(session, pair)
    finally:
        engine.dispose()
    return [pair.id for pair in pairs]


def scores(url: str, pair_ids: list[str] | None = None) -> list[Score]:
    """Stored score rows (of some pairs)."""
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            query = select(Score)
            if pair_ids is not None:
                query = query.where(Score.pair_id.in_(pair_ids))
            return list(session.scalars(query).all())
    finally:
        engine.dispose()


def by_pair(rows: list[Score]) -> dict[str, dict[str, Score]]:
    """Score rows as {pair id: {metric: row}}."""
    out: dict[str, dict[str, Score]] = {}
    for row in rows:
        out.setdefault(row.pair_id, {})[row.metric] = row
    return out
