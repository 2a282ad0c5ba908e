"""Migrations and the repository, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, text

from storage.db import make_engine
from storage.migrate import downgrade, upgrade
from storage.models import Base, NoiseReask, RequestPair
from storage.repository import captured_requests, count_pairs, insert_pair
from storage.schemas import AnswerFields, PairCreate

TABLES = {
    "use_cases",
    "request_pairs",
    "noise_reasks",
    "scores",
    "criteria_versions",
    "decisions",
    "api_tokens",
    "capacity_runs",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path, create_postgres_database):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    return create_postgres_database()


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrations_upgrade_and_downgrade(empty_database):
    upgrade(empty_database)
    assert _tables(empty_database) >= TABLES | {"alembic_version"}
    downgrade(empty_database, "base")
    assert _tables(empty_database) & TABLES == set()
    upgrade(empty_database)
    assert _tables(empty_database) >= TABLES


def test_migrations_match_the_models(empty_database):
    """The migrated schema has every column the models declare."""
    upgrade(empty_database)
    engine = make_engine(empty_database)
    try:
        inspector = inspect(engine)
        for table in Base.metadata.sorted_tables:
            migrated = {c["name"] for c in inspector.get_columns(table.name)}
            assert migrated == {c.name for c in table.columns}, table.name
    finally:
        engine.dispose()


def _pair(pair_id: str = "pair-1", noise: bool = True) -> PairCreate:
    return PairCreate(
        id=pair_id,
        use_case="support-chat",
        endpoint="chat.completions",
        stream=True,
        created_at=datetime(2026, 11, 27, 12, 0, tzinfo=UTC),
        request_body='{"model": "gpt-4o-mini", "messages": []}',
        request_sha256="0" * 64,
        primary_model="gpt-4o-mini",
        primary_request_id="req_1",
        primary=AnswerFields(
            status_code=200, text="hello", latency_ms=120.0, ttft_ms=40.0, completion_tokens=3
        ),
        candidate_model="llama",
        candidate=AnswerFields(latency_ms=60000.0, error="timed out", error_kind="timeout"),
        noise=AnswerFields(status_code=200, text="hi", latency_ms=100.0) if noise else None,
    )


def test_a_pair_is_stored_once(db_session):
    assert insert_pair(db_session, _pair()) is True
    assert insert_pair(db_session, _pair()) is False
    db_session.flush()
    assert count_pairs(db_session, "support-chat") == 1
    stored = db_session.get(RequestPair, "pair-1")
    assert stored.status == "timeout"
    assert stored.candidate_latency_ms == 60000.0
    assert stored.candidate_error_kind == "timeout"
    assert stored.primary_ttft_ms == 40.0
    assert stored.created_at.replace(tzinfo=UTC) == datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    noise = db_session.get(NoiseReask, "pair-1")
    assert isinstance(noise, NoiseReask)
    assert noise.text == "hi"


def test_captured_requests_are_the_newest_oldest_first(db_session):
    for day in (27, 29, 28):
        pair = _pair(f"pair-{day}", noise=False).model_copy(
            update={"created_at": datetime(2026, 11, day, tzinfo=UTC)}
        )
        insert_pair(db_session, pair)
    db_session.flush()
    rows = captured_requests(db_session, "support-chat", 2)
    assert [at.day for at, *_ in rows] == [28, 29]


def test_deleting_a_pair_deletes_its_noise_reask(db_session):
    insert_pair(db_session, _pair())
    db_session.flush()
    db_session.execute(text("DELETE FROM request_pairs WHERE id = 'pair-1'"))
    db_session.expunge_all()
    assert db_session.get(NoiseReask, "pair-1") is None


def test_the_traffic_summary_comes_from_the_aggregates_not_the_pairs(db_session):
    """Cost inputs: summed primary cost and the busiest 10-minute bucket, no pair row read."""
    from sqlalchemy import event

    from storage.models import Score
    from storage.repository import traffic_summary

    start = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    arrivals = [start + timedelta(seconds=s) for s in (0, 30, 90, 200, 700, 1300, 1310, 1320)]
    for index, moment in enumerate(arrivals):
        pair = _pair(f"pair-{index}", noise=False).model_copy(update={"created_at": moment})
        insert_pair(db_session, pair)
        db_session.add(Score(pair_id=pair.id, metric="cost.primary_usd", value=0.25))
    db_session.flush()
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args):
        statements.append(statement)

    engine = db_session.get_bind().engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        total, priced, busiest = traffic_summary(db_session, "support-chat")
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert total == pytest.approx(2.0)
    assert priced == 8
    assert busiest == 4  # 12:00-12:10 holds four arrivals
    assert statements
    assert not any("request_pairs" in s or "FROM scores" in s for s in statements)
