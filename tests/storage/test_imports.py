"""Imports and each pair's source, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage import repository
from storage.models import Import, RequestPair, Score
from storage.schemas import AnswerFields, PairCreate

START = datetime(2026, 11, 20, tzinfo=UTC)


def _import(session, import_id: str) -> None:
    repository.add_import(
        session,
        Import(
            id=import_id, use_case="u", format="jsonl", files=["log.jsonl"], state="running",
            rate=2.0, read=3, stored=3, skipped=0, failed=0, duplicates=0, errors=[],
        ),
    )  # fmt: skip


def _pair(session, pair_id: str, import_id: str | None, latency: float | None) -> None:
    repository.insert_pair(
        session,
        PairCreate(
            id=pair_id,
            use_case="u",
            endpoint="chat.completions",
            stream=False,
            created_at=START + timedelta(seconds=len(pair_id)),
            request_body="{}",
            request_sha256="0" * 64,
            primary_model="gpt-4o-mini",
            primary_request_id=None,
            primary=AnswerFields(status_code=200, text="a", latency_ms=latency),
            candidate_model="llama",
            candidate=AnswerFields(status_code=200, text="b", latency_ms=20.0),
            source="import" if import_id else "live",
            import_id=import_id,
        ),
    )


def test_imports_count_their_pairs_and_scored_pairs(db_session):
    _import(db_session, "imp_a")
    _import(db_session, "imp_b")
    _pair(db_session, "p1", "imp_a", None)
    _pair(db_session, "p2", "imp_a", 310.0)
    _pair(db_session, "p3", None, 250.0)
    db_session.add(Score(pair_id="p1", metric="quality.rouge_l", value=0.5))
    db_session.add(Score(pair_id="p1", metric="candidate.error", value=0.0))
    db_session.flush()
    assert repository.import_progress(db_session, ["imp_a", "imp_b"]) == {
        "imp_a": (2, 1),
        "imp_b": (0, 0),
    }
    assert repository.source_counts(db_session, "u") == [("import", "imp_a", 2), ("live", None, 1)]
    assert repository.existing_pair_ids(db_session, ["p1", "p9"]) == {"p1"}
    assert sorted(repository.pair_imports(db_session, ["p1", "p3"])) == [
        ("p1", "imp_a"),
        ("p3", None),
    ]
    # newest first
    assert [row.id for row in repository.list_imports(db_session, "u")] == ["imp_b", "imp_a"]
    # an imported answer whose latency was not recorded is stored as not measured
    assert db_session.get(RequestPair, "p1").primary_latency_ms is None
    assert db_session.get(RequestPair, "p2").primary_latency_ms == 310.0
