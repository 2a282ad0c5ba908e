"""Migration 0008: a database of single-candidate pairs upgrades, its verdict unchanged."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import DateTime, bindparam, text

from criteria.readiness import service
from criteria.usecases import UseCaseInfo
from evaluators.repository import insert_scores
from storage import repository
from storage.db import make_engine, session_scope
from storage.migrate import downgrade, upgrade
from storage.schemas import AnswerFields, PairCreate

START = datetime(2026, 11, 2, tzinfo=UTC)
N = 150
CRITERIA = """\
use_case: support-chat
criteria:
  - {name: overlap, metric: quality.rouge_l, stat: mean, op: '>=', threshold: 0.5}
  - {name: similarity, metric: quality.semantic_similarity, stat: mean,
     mode: noise_adjusted, margin: 0.1, critical: true}
  - {name: errors, metric: candidate.error, stat: proportion, op: '<=', threshold: 0.1}
  - {name: tail latency, metric: candidate.latency_ms, stat: quantile, q: 0.95,
     op: '<=', threshold: 900}
"""
INFO = UseCaseInfo(
    name="support-chat",
    mode="shadow",
    sample_rate=1.0,
    primary_model="m",
    candidate_model="c",
    criteria_text=CRITERIA,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path, create_postgres_database):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    return create_postgres_database()


def _evidence(seed: int = 7) -> list[tuple[str, datetime, dict[str, float]]]:
    rng = np.random.default_rng(seed)
    found = []
    for i in range(N):
        at = START + timedelta(seconds=float(rng.uniform(0, 36000)))
        values = {
            "quality.rouge_l": float(rng.beta(8, 2)),
            "quality.semantic_similarity": float(rng.beta(20, 2)),
            "candidate.error": float(rng.random() < 0.02),
            "candidate.latency_ms": float(rng.lognormal(np.log(400), 0.3)),
        }
        if i % 3 == 0:
            values["noise.semantic_similarity"] = float(rng.beta(22, 2))
        found.append((f"pair-{i:04d}", at, values))
    return found


def _sql(statement: str, *times: str):
    """A statement whose time parameters are bound as the models bind them (SQLite: text)."""
    return text(statement).bindparams(
        *(bindparam(name, type_=DateTime(timezone=True)) for name in times)
    )


def _insert_at_0006(url: str) -> None:
    """Rows as the code of revision 0006 stored them (no candidate anywhere)."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                _sql("INSERT INTO use_cases (name, created_at) VALUES (:n, :t)", "t"),
                {"n": "support-chat", "t": START},
            )
            for pair_id, at, values in _evidence():
                connection.execute(
                    _sql(
                        "INSERT INTO request_pairs (id, use_case, endpoint, stream, status,"
                        " created_at, completed_at, request_sha256, text_stored, primary_model,"
                        " primary_status_code, primary_latency_ms, candidate_model,"
                        " candidate_latency_ms) VALUES (:id, 'support-chat', 'chat.completions',"
                        " false, 'ok', :at, :at, :sha, true, 'm', 200, 300, 'c', :latency)",
                        "at",
                    ),
                    {
                        "id": pair_id,
                        "at": at,
                        "sha": "0" * 64,
                        "latency": values["candidate.latency_ms"],
                    },
                )
                for metric, value in values.items():
                    connection.execute(
                        _sql(
                            "INSERT INTO scores (pair_id, metric, value, created_at)"
                            " VALUES (:p, :m, :v, :t)",
                            "t",
                        ),
                        {"p": pair_id, "m": metric, "v": value, "t": at},
                    )
            connection.execute(
                _sql(
                    "INSERT INTO capacity_runs (use_case, started_at, finished_at, target,"
                    " slo_quantile, slo_ms, error_limit, rps_at_slo, steps) VALUES"
                    " ('support-chat', :t, :t, 'http://gpu/v1 c', 0.95, 900, 0.01, 12.5, :s)",
                    "t",
                ),
                {"t": START, "s": json.dumps([])},
            )
    finally:
        engine.dispose()


def _insert_at_head(url: str) -> None:
    """The same evidence stored by today's code, for the verdict to compare with."""
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            for pair_id, at, values in _evidence():
                repository.insert_pair(
                    session,
                    PairCreate(
                        id=pair_id,
                        use_case="support-chat",
                        endpoint="chat.completions",
                        stream=False,
                        created_at=at,
                        request_body=None,
                        request_sha256="0" * 64,
                        primary_model="m",
                        primary_request_id=None,
                        primary=AnswerFields(status_code=200, latency_ms=300),
                        candidate_model="c",
                        candidate=AnswerFields(latency_ms=values["candidate.latency_ms"]),
                    ),
                )
                insert_scores(
                    session,
                    [{"pair_id": pair_id, "metric": m, "value": v} for m, v in values.items()],
                )
    finally:
        engine.dispose()


def _verdict(url: str):
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            return service.evaluate(session, INFO, now=START + timedelta(days=3))
    finally:
        engine.dispose()


def test_single_candidate_pairs_upgrade_to_default_with_the_same_verdict(empty_database, tmp_path):
    upgrade(empty_database, "0006")
    _insert_at_0006(empty_database)
    upgrade(empty_database)
    engine = make_engine(empty_database)
    try:
        with session_scope(engine) as session:
            names = session.execute(text("SELECT DISTINCT candidate_name FROM request_pairs"))
            assert [row[0] for row in names] == ["default"]
            assert repository.pair_window(session, "support-chat")[0] == N
            assert repository.pair_window(session, "support-chat", "default")[0] == N
            assert repository.latest_capacity(session, "support-chat") == 12.5
    finally:
        engine.dispose()

    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade(fresh)
    _insert_at_head(fresh)
    upgraded, today = _verdict(empty_database), _verdict(fresh)
    assert upgraded.candidate == "default"
    assert upgraded.verdict == today.verdict
    assert upgraded.reasons == today.reasons
    assert [(c.name, c.verdict, c.n) for c in upgraded.criteria] == [
        (c.name, c.verdict, c.n) for c in today.criteria
    ]
    for mine, theirs in zip(upgraded.criteria, today.criteria, strict=True):
        # the same sums, added in another order
        assert (mine.ci_low, mine.ci_high) == pytest.approx((theirs.ci_low, theirs.ci_high))
    assert all(c.n > 0 for c in upgraded.criteria)
    # down to 0006 and up again keeps every score (a copied table must not cascade)
    downgrade(empty_database, "0006")
    upgrade(empty_database)
    again = _verdict(empty_database)
    assert [(c.name, c.verdict, c.n) for c in again.criteria] == [
        (c.name, c.verdict, c.n) for c in today.criteria
    ]
