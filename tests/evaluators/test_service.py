"""Scoring stored pairs on SQLite and PostgreSQL: once per metric, failures isolated, rescoring."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from evaluators.config import EvaluatorsConfig
from evaluators.cost import CandidateCostEvaluator
from evaluators.latency import LatencyEvaluator
from evaluators.overlap import OverlapEvaluator
from evaluators.pair import Deployment
from evaluators.repository import insert_scores, pair_ids_for
from evaluators.runtime import ScoringRuntime
from evaluators.service import evaluate, rescore_pairs, score_stored_pairs
from storage.models import CapacityRun, Score
from storage.repository import insert_pair
from tests.evaluators.conftest import make_pair
from tests.evaluators.helpers import pair_create


class Broken:
    """Fails on pairs whose candidate says "boom" (and on any batch holding one)."""

    name = "broken"
    metrics = ("quality.exact_match", "quality.refusal")

    def score(self, pairs):
        if any(pair.candidate.text == "boom" for pair in pairs):
            raise RuntimeError("cannot score this")
        return [{"quality.exact_match": 1.0} for _ in pairs]


def runtime(*evaluators):
    return ScoringRuntime(
        EvaluatorsConfig(), list(evaluators or (LatencyEvaluator(), OverlapEvaluator()))
    )


def rows(session, pair_id=None):
    query = select(Score).order_by(Score.metric)
    if pair_id is not None:
        query = query.where(Score.pair_id == pair_id)
    return {row.metric: row for row in session.scalars(query)}


def test_a_failing_evaluator_fails_its_metrics_on_its_pair_only():
    pairs = [make_pair("a", "a", pair_id="ok"), make_pair("a", "boom", pair_id="bad")]
    result = evaluate(pairs, [Broken(), LatencyEvaluator()])
    bad = {row.metric: row for row in result if row.pair_id == "bad"}
    ok = {row.metric: row for row in result if row.pair_id == "ok"}
    assert ok["quality.exact_match"].value == 1.0
    assert "quality.refusal" not in ok
    for metric in Broken.metrics:
        assert bad[metric].value is None
        assert bad[metric].error == "RuntimeError: cannot score this"
    assert bad["candidate.latency_ms"].value == 150.0


def test_undeclared_and_non_finite_values_are_errors_not_numbers():
    class Sloppy:
        name = "sloppy"
        metrics = ("quality.bleu",)

        def score(self, pairs):
            made = {"one": {"quality.bleu": float("nan")}, "two": {"quality.rouge_l": 1.0}}
            return [made[pair.id] for pair in pairs]

    first, second = make_pair(pair_id="one"), make_pair(pair_id="two")
    result = {(r.pair_id, r.metric): r for r in evaluate([first, second], [Sloppy()])}
    assert result[("one", "quality.bleu")].value is None
    assert "finite" in result[("one", "quality.bleu")].error
    assert result[("two", "quality.bleu")].value is None
    assert "does not declare" in result[("two", "quality.bleu")].error


def test_scores_are_written_once_per_pair_and_metric(db_session):
    pair = pair_create("The cat sat.", "The cat sat down.")
    insert_pair(db_session, pair)
    written = score_stored_pairs(db_session, [pair.id, pair.id], runtime())
    assert written == 8
    assert score_stored_pairs(db_session, [pair.id], runtime()) == 0
    again = [{"pair_id": pair.id, "metric": "quality.bleu", "value": 0.0, "error": None}]
    assert insert_scores(db_session, again) == 0
    stored = rows(db_session, pair.id)
    assert len(stored) == 8
    assert stored["quality.bleu"].value > 0


def test_a_missing_pair_is_skipped(db_session):
    assert score_stored_pairs(db_session, ["no-such-pair"], runtime()) == 0


def test_rescoring_a_metric_replaces_that_metric_only(db_session):
    pair = pair_create("The cat sat.", "The cat sat down.")
    insert_pair(db_session, pair)
    score_stored_pairs(db_session, [pair.id], runtime())
    stored = rows(db_session, pair.id)
    stored["quality.rouge_l"].value = -1.0
    stored["quality.bleu"].value = -1.0
    stored["candidate.latency_ms"].value = -1.0
    db_session.flush()
    assert rescore_pairs(db_session, [pair.id], runtime(), ["quality.rouge_l"]) == 1
    db_session.expire_all()
    stored = rows(db_session, pair.id)
    assert stored["quality.rouge_l"].value == pytest.approx(0.857142857)
    assert stored["quality.bleu"].value == -1.0
    assert stored["candidate.latency_ms"].value == -1.0
    assert rescore_pairs(db_session, [pair.id], runtime()) == 8
    db_session.expire_all()
    assert rows(db_session, pair.id)["candidate.latency_ms"].value == 180.0


def test_rescoring_an_unknown_or_disabled_metric_is_refused(db_session):
    with pytest.raises(ValueError, match="unknown metric"):
        rescore_pairs(db_session, [], runtime(), ["quality.vibes"])
    with pytest.raises(ValueError, match=r"no enabled evaluator produces quality\.judge_score"):
        rescore_pairs(db_session, [], runtime(), ["quality.judge_score"])


def test_pairs_to_rescore_by_use_case_age_and_scoring(db_session):
    old = pair_create("a", "b", use_case="pick")
    old.created_at = datetime.now(UTC) - timedelta(days=3)
    new = pair_create("a", "b", use_case="pick")
    other = pair_create("a", "b", use_case="other")
    for pair in (old, new, other):
        insert_pair(db_session, pair)
    score_stored_pairs(db_session, [new.id], runtime())
    assert pair_ids_for(db_session, "pick") == [old.id, new.id]
    assert pair_ids_for(db_session, "pick", since=datetime.now(UTC) - timedelta(days=1)) == [new.id]
    assert pair_ids_for(db_session, "pick", unscored=True) == [old.id]


def test_candidate_cost_appears_once_a_replay_measured_capacity(db_session):
    first, second = pair_create("a", "b"), pair_create("a", "b")
    insert_pair(db_session, first)
    insert_pair(db_session, second)
    cost = ScoringRuntime(
        EvaluatorsConfig(), [CandidateCostEvaluator()], {"scored": Deployment(hourly_usd=3.6)}
    )
    assert score_stored_pairs(db_session, [first.id], cost) == 0
    run = CapacityRun(
        use_case="scored",
        target="http://gpu/v1 cand-model",
        slo_quantile=0.95,
        slo_ms=1500,
        error_limit=0.01,
        rps_at_slo=2.0,
        steps=[],
    )
    db_session.add(run)
    db_session.flush()
    assert score_stored_pairs(db_session, [second.id], cost) == 1
    assert rows(db_session, second.id)["cost.candidate_usd"].value == pytest.approx(0.0005)
