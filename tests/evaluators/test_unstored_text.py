"""Pairs stored without text (`store_text: false`): scored from the message's texts, never guessed."""

from __future__ import annotations

from sqlalchemy import select

from evaluators.answers import ExactMatchEvaluator
from evaluators.config import EvaluatorsConfig
from evaluators.latency import LatencyEvaluator
from evaluators.overlap import OverlapEvaluator
from evaluators.pair import AnswerText, PairTexts
from evaluators.runtime import ScoringRuntime
from evaluators.service import rescore_pairs, score_stored_pairs
from storage.models import Score
from storage.repository import insert_pair
from tests.evaluators.helpers import pair_create

PRIMARY, CANDIDATE = "The cat sat on the mat.", "The cat sat on a mat."


def runtime():
    return ScoringRuntime(
        EvaluatorsConfig(), [LatencyEvaluator(), OverlapEvaluator(), ExactMatchEvaluator()]
    )


def _unstored(db_session):
    pair = pair_create(PRIMARY, CANDIDATE)
    texts = PairTexts(
        request_body=pair.request_body,
        primary=AnswerText(text=PRIMARY),
        candidate=AnswerText(text=CANDIDATE),
    )
    stored = pair.model_copy(
        update={
            "request_body": None,
            "text_stored": False,
            "primary": pair.primary.model_copy(update={"text": None}),
            "candidate": pair.candidate.model_copy(update={"text": None}),
        }
    )
    insert_pair(db_session, stored)
    db_session.flush()
    return pair.id, texts


def _scores(db_session, pair_id):
    rows = db_session.scalars(select(Score).where(Score.pair_id == pair_id))
    return {row.metric: row.value for row in rows}


def test_the_message_texts_score_the_quality_metrics(db_session):
    pair_id, texts = _unstored(db_session)
    score_stored_pairs(db_session, [pair_id], runtime(), texts={pair_id: texts})
    scores = _scores(db_session, pair_id)
    assert 0.5 < scores["quality.rouge_l"] < 1
    assert scores["quality.exact_match"] == 0.0
    assert scores["candidate.latency_ms"] == 180.0


def test_without_the_texts_only_metrics_that_read_no_text_are_scored(db_session):
    pair_id, _ = _unstored(db_session)
    score_stored_pairs(db_session, [pair_id], runtime())
    scores = _scores(db_session, pair_id)
    assert scores["candidate.latency_ms"] == 180.0
    assert not [metric for metric in scores if metric.startswith("quality.")]


def test_rescoring_keeps_the_scores_it_cannot_redo(db_session):
    pair_id, texts = _unstored(db_session)
    score_stored_pairs(db_session, [pair_id], runtime(), texts={pair_id: texts})
    before = _scores(db_session, pair_id)
    db_session.execute(
        Score.__table__.update()
        .where(Score.pair_id == pair_id, Score.metric == "candidate.latency_ms")
        .values(value=-1.0)
    )
    rescore_pairs(db_session, [pair_id], runtime())
    after = _scores(db_session, pair_id)
    assert after == before
    rescore_pairs(db_session, [pair_id], runtime(), ["quality.rouge_l"])
    assert _scores(db_session, pair_id) == before
