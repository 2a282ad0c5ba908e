"""`insert_rows`: one array per column on PostgreSQL, executemany on SQLite, same results."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from storage.bulk import insert_rows
from storage.db import make_engine
from storage.models import Score, ScoreHistogram
from storage.repository import insert_pair
from tests.storage.test_storage import _pair

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
KEY = ["use_case", "candidate", "series", "feature", "bin"]


def _score(
    pair_id: str, metric: str, value: float | None, error: str | None = None
) -> dict[str, Any]:
    return {"pair_id": pair_id, "metric": metric, "value": value, "error": error, "created_at": NOW}


def _bins(use_case: str, *rows: tuple[str, int, int]) -> list[dict[str, Any]]:
    return [
        {"use_case": use_case, "candidate": "default", "feature": "", "series": s, "bin": b, "n": n}
        for s, b, n in rows
    ]


def test_new_rows_are_returned_and_stored_ones_skipped(db_session: Session) -> None:
    # the PostgreSQL database is shared by the session: ids of this test's own
    p1, p2 = str(uuid.uuid4()), str(uuid.uuid4())
    insert_pair(db_session, _pair(p1, noise=False))
    insert_pair(db_session, _pair(p2, noise=False))
    connection = db_session.connection()
    returning = [Score.pair_id, Score.metric, Score.value]
    first = insert_rows(
        connection,
        Score,
        [_score(p1, "quality.bleu", 0.25), _score(p1, "quality.rouge_l", None, "boom")],
        conflict=["pair_id", "metric"],
        returning=returning,
    )
    assert sorted(tuple(row) for row in first) == [
        (p1, "quality.bleu", 0.25),
        (p1, "quality.rouge_l", None),
    ]
    again = insert_rows(
        connection,
        Score,
        [
            _score(p1, "quality.bleu", 0.9),  # stored already: skipped, not changed
            _score(p2, "quality.bleu", 0.5),
            _score(p2, "quality.json_valid", None, 'it\'s "quoted", {braced}\nand long'),
        ],
        conflict=["pair_id", "metric"],
        returning=returning,
    )
    assert sorted(tuple(row) for row in again) == [
        (p2, "quality.bleu", 0.5),
        (p2, "quality.json_valid", None),
    ]
    stored = db_session.execute(
        select(Score.pair_id, Score.metric, Score.value, Score.error)
        .where(Score.pair_id.in_([p1, p2]))
        .order_by(Score.id)
    ).all()
    assert [tuple(row) for row in stored] == [
        (p1, "quality.bleu", 0.25, None),
        (p1, "quality.rouge_l", None, "boom"),
        (p2, "quality.bleu", 0.5, None),
        (p2, "quality.json_valid", None, 'it\'s "quoted", {braced}\nand long'),
    ]


def test_conflicting_rows_update_the_stored_ones(db_session: Session) -> None:
    connection = db_session.connection()
    use_case = f"bulk-{uuid.uuid4().hex}"

    def add(rows: list[dict[str, Any]]) -> None:
        insert_rows(
            connection,
            ScoreHistogram,
            rows,
            conflict=KEY,
            update={"n": lambda stored, excluded: stored + excluded.n},
        )

    add(_bins(use_case, ("a", -(2**40), 3), ("a", 7, 1)))
    add(_bins(use_case, ("a", -(2**40), -1), ("b", 7, 5)))
    stored = db_session.execute(
        select(ScoreHistogram.series, ScoreHistogram.bin, ScoreHistogram.n)
        .where(ScoreHistogram.use_case == use_case)
        .order_by(ScoreHistogram.series, ScoreHistogram.bin)
    ).all()
    assert [tuple(row) for row in stored] == [("a", -(2**40), 2), ("a", 7, 1), ("b", 7, 5)]


def test_no_rows_send_no_statement(db_session: Session) -> None:
    assert insert_rows(db_session.connection(), ScoreHistogram, [], conflict=KEY) == []


def test_the_postgresql_statement_is_the_same_for_any_number_of_rows(postgres_url: str) -> None:
    # The point of the arrays: psycopg converts a statement's placeholders in Python and
    # caches that only for short texts, so a text per row count cost the scoring ~10 ms a go.
    engine = make_engine(postgres_url)
    sent: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: sent.append(args[2]))
    try:
        with engine.connect() as connection:  # never committed
            for count in (1, 3, 300):
                rows = _bins("bulk", *(("same-text", code, 1) for code in range(count)))
                insert_rows(connection, ScoreHistogram, rows, conflict=KEY)
    finally:
        engine.dispose()
    inserts = [statement for statement in sent if statement.startswith("INSERT")]
    assert len(inserts) == 3
    assert len(set(inserts)) == 1
    assert len(inserts[0]) < 1000
