"""The score aggregates: kept exact by the scoring writes, and judged like the raw scores."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from criteria.readiness import service
from criteria.usecases import UseCaseInfo
from evaluators.repository import delete_scores, insert_scores
from storage import aggregates, repository
from storage.models import Score, ScoreAggregate, ScoreHistogram
from storage.repository import insert_pair
from storage.schemas import AnswerFields, PairCreate

START = datetime(2026, 11, 2, tzinfo=UTC)

CRITERIA = """\
use_case: {use_case}
alpha: 0.05
criteria:
  - {{name: overlap, metric: quality.rouge_l, stat: mean, op: '>=', threshold: {rouge}}}
  - {{name: similarity, metric: quality.semantic_similarity, stat: mean,
     mode: noise_adjusted, margin: 0.1, critical: true}}
  - {{name: errors, metric: candidate.error, stat: proportion, op: '<=', threshold: 0.05}}
  - {{name: valid json, metric: quality.json_valid, stat: proportion, op: '>=', threshold: 0.9}}
  - {{name: tail latency, metric: candidate.latency_ms, stat: quantile, q: 0.95,
     op: '<=', threshold: {p95}}}
  - {{name: median latency, metric: candidate.latency_ms, stat: quantile, q: 0.5,
     op: '<', threshold: 400}}
  - {{name: similarity floor, metric: quality.semantic_similarity, stat: quantile, q: 0.1,
     op: '>=', threshold: 0.5}}
  - {{name: no slower, metric: candidate.latency_ms, stat: quantile, q: 0.5,
     mode: relative, margin: 0.2}}
  - {{name: ratio p90, metric: latency.ratio, stat: quantile, q: 0.9, op: '>', threshold: 0.8}}
  - {{name: billing overlap, metric: quality.rouge_l, stat: mean, op: '>=', threshold: 0.6,
     segment: billing}}
  - {{name: odd threshold, metric: candidate.latency_ms, stat: quantile, q: 0.9,
     op: '<=', threshold: 1234.5}}
"""


def _pair(pair_id: str, use_case: str, at: datetime, feature: str | None) -> PairCreate:
    return PairCreate(
        id=pair_id,
        use_case=use_case,
        endpoint="chat.completions",
        feature=feature,
        stream=False,
        created_at=at,
        request_body=None,
        request_sha256="0" * 64,
        primary_model="m",
        primary_request_id=None,
        primary=AnswerFields(status_code=200, text="a", latency_ms=300),
        candidate_model="c",
        candidate=AnswerFields(status_code=200, text="b", latency_ms=300),
    )


def _scores(
    rng: np.random.Generator, pair_id: str, quality: float, slow: float
) -> list[dict[str, Any]]:
    primary = float(rng.lognormal(np.log(350), 0.3))
    # some latencies land exactly on thresholds, as timeouts do
    candidate = 1500.0 if rng.random() < 0.02 else float(rng.lognormal(np.log(330 * slow), 0.4))
    failed = rng.random() < 0.02 * slow
    similarity = float(min(1.0, rng.beta(quality * 30, 2) + 0.02))
    values = {
        "primary.latency_ms": primary,
        "candidate.latency_ms": candidate,
        "latency.ratio": candidate / primary,
        "candidate.error": float(failed),
        "quality.rouge_l": float(rng.beta(quality * 8, 2)),
        "quality.semantic_similarity": similarity,
        "quality.json_valid": float(rng.random() < 0.95),
    }
    if rng.random() < 0.6:
        values["noise.semantic_similarity"] = float(min(1.0, rng.beta(30, 2) + 0.02))
    return [{"pair_id": pair_id, "metric": m, "value": v, "error": None} for m, v in values.items()]


def _seed(session, use_case: str, n: int, quality: float, slow: float, seed: int) -> None:
    """Pairs over ~10 hours, scored in shuffled batches as concurrent workers would."""
    rng = np.random.default_rng(seed)
    features = [None, "billing", "search"]
    for i in range(n):
        at = START + timedelta(seconds=float(rng.uniform(0, 36000)))
        insert_pair(session, _pair(f"{use_case}-{i}", use_case, at, features[i % 3]))
    rows = [r for i in range(n) for r in _scores(rng, f"{use_case}-{i}", quality, slow)]
    order = rng.permutation(len(rows))
    for start in range(0, len(rows), 97):
        insert_scores(session, [rows[j] for j in order[start : start + 97]])


def _info(use_case: str, rouge: float = 0.6, p95: float = 1500) -> UseCaseInfo:
    return UseCaseInfo(
        name=use_case,
        mode="shadow",
        sample_rate=1.0,
        primary_model="m",
        candidate_model="c",
        criteria_text=CRITERIA.format(use_case=use_case, rouge=rouge, p95=p95),
    )


def _assert_same(session, info: UseCaseInfo) -> list[str]:
    now = START + timedelta(days=3)
    fast = service.evaluate(session, info, now=now)
    slow = service.evaluate(session, info, now=now, raw=True)
    assert fast.verdict == slow.verdict
    # reasons quote the figures, which quantiles give to their histogram bin
    assert [r.split(":")[0] for r in fast.reasons] == [r.split(":")[0] for r in slow.reasons]
    for agg, raw in zip(fast.criteria, slow.criteria, strict=True):
        assert (agg.name, agg.verdict, agg.n, agg.needed_n) == (
            raw.name,
            raw.verdict,
            raw.n,
            raw.needed_n,
        )
        if agg.stat == "quantile":
            # the histogram bin holding the order statistic: 3 significant digits
            for got, exact in ((agg.ci_low, raw.ci_low), (agg.ci_high, raw.ci_high)):
                assert (got is None) == (exact is None)
                if got is not None and exact is not None:
                    assert got == pytest.approx(exact, rel=0.011)
            assert agg.ci_low is None or raw.ci_low is None or agg.ci_low <= raw.ci_low
            assert agg.ci_high is None or raw.ci_high is None or agg.ci_high >= raw.ci_high
            assert agg.estimate == pytest.approx(raw.estimate, rel=0.011)
        else:
            for got, exact in (
                (agg.estimate, raw.estimate),
                (agg.ci_low, raw.ci_low),
                (agg.ci_high, raw.ci_high),
            ):
                if exact is None:  # an unbounded end, before the sequence's first bound
                    assert got is None
                else:
                    assert got == pytest.approx(exact, rel=1e-9, abs=1e-12)
    return [fast.verdict] + [c.verdict for c in fast.criteria]


def test_aggregate_and_raw_paths_give_the_same_verdicts_and_figures(db_session):
    seen: set[str] = set()
    for use_case, n, quality, slow, rouge, p95 in (
        ("good", 900, 1.0, 1.0, 0.6, 1500),
        ("bad", 500, 0.4, 2.5, 0.6, 1500),
        ("close", 300, 0.8, 1.6, 0.78, 1000),
        ("young", 12, 1.0, 1.0, 0.6, 1500),
    ):
        _seed(db_session, use_case, n, quality, slow, seed=n + len(use_case))
        seen.update(_assert_same(db_session, _info(use_case, rouge, p95)))
    # the data sets reach every kind of outcome, so agreement is not agreement on one answer
    assert {"GO", "NO_GO", "INSUFFICIENT_DATA", "PASS", "FAIL", "INCONCLUSIVE"} <= seen


def _stored(session, use_case: str) -> tuple[list[Any], list[Any]]:
    sums = session.execute(
        select(
            ScoreAggregate.feature,
            ScoreAggregate.series,
            ScoreAggregate.bucket,
            ScoreAggregate.n,
            ScoreAggregate.nonzero,
            ScoreAggregate.total,
            ScoreAggregate.total_sq,
        )
        .where(ScoreAggregate.use_case == use_case)
        .order_by(ScoreAggregate.feature, ScoreAggregate.series, ScoreAggregate.bucket)
    ).all()
    bins = session.execute(
        select(ScoreHistogram.feature, ScoreHistogram.series, ScoreHistogram.bin, ScoreHistogram.n)
        .where(ScoreHistogram.use_case == use_case)
        .order_by(ScoreHistogram.feature, ScoreHistogram.series, ScoreHistogram.bin)
    ).all()
    return [tuple(r) for r in sums], [tuple(r) for r in bins]


def _assert_match_rebuild(session, use_case: str) -> None:
    kept_sums, kept_bins = _stored(session, use_case)
    aggregates.rebuild(session, use_case)
    fresh_sums, fresh_bins = _stored(session, use_case)
    assert kept_bins == fresh_bins
    assert [r[:5] for r in kept_sums] == [r[:5] for r in fresh_sums]
    for kept, fresh in zip(kept_sums, fresh_sums, strict=True):
        assert kept[5:] == pytest.approx(fresh[5:], rel=1e-9, abs=1e-9)


def test_scoring_a_pair_twice_counts_it_once(db_session):
    _seed(db_session, "twice", 60, 1.0, 1.0, seed=3)
    before = _stored(db_session, "twice")
    stored = db_session.execute(
        select(Score.pair_id, Score.metric).where(Score.pair_id.like("twice-%"))
    ).all()
    # a redelivered batch: the same (pair, metric) rows, even with other values
    again = [{"pair_id": p, "metric": m, "value": 0.5, "error": None} for p, m in stored]
    assert insert_scores(db_session, again) == 0
    assert _stored(db_session, "twice") == before
    rouge = aggregates.bucket_sums(db_session, "twice", "quality.rouge_l")
    assert sum(n for _, n, *_ in rouge) == 60
    _assert_match_rebuild(db_session, "twice")


def test_a_rescore_keeps_the_aggregates_consistent(db_session):
    _seed(db_session, "rescored", 200, 1.0, 1.0, seed=5)
    info = _info("rescored")
    now = START + timedelta(days=3)
    assert service.evaluate(db_session, info, now=now).verdict != "NO_GO"
    # what `switchover rescore` does per batch: replace some metrics of some pairs
    rng = np.random.default_rng(6)
    ids = [f"rescored-{i}" for i in range(0, 200, 2)]
    redone = ["quality.rouge_l", "noise.semantic_similarity", "candidate.latency_ms"]
    delete_scores(db_session, ids, redone)
    rows = [r for p in ids for r in _scores(rng, p, 0.3, 3.0) if r["metric"] in redone]
    insert_scores(db_session, rows)
    changed = _assert_same(db_session, info)
    assert changed[0] == "NO_GO"  # the rescore is seen: the verdict moved
    _assert_match_rebuild(db_session, "rescored")
    # whole pairs rescored (every metric deleted then written again)
    delete_scores(db_session, ids[:20])
    assert aggregates.bucket_sums(db_session, "rescored", "quality.rouge_l")[0][1] >= 1
    insert_scores(db_session, [r for p in ids[:20] for r in _scores(rng, p, 1.0, 1.0)])
    _assert_same(db_session, info)
    _assert_match_rebuild(db_session, "rescored")


def test_scores_added_through_the_orm_are_aggregated(db_session):
    insert_pair(db_session, _pair("orm-1", "orm", START, None))
    db_session.add(Score(pair_id="orm-1", metric="quality.rouge_l", value=0.25))
    db_session.add(Score(pair_id="orm-1", metric="quality.bleu", value=None, error="failed"))
    db_session.flush()
    rows = aggregates.bucket_sums(db_session, "orm", "quality.rouge_l")
    assert [row[1:] for row in rows] == [(1, 0.25, 0.0625)]
    assert aggregates.bucket_sums(db_session, "orm", "quality.bleu") == []


def test_bins_are_ordered_and_exact_at_3_significant_digit_thresholds():
    rng = np.random.default_rng(9)
    values = np.concatenate(
        [rng.lognormal(5, 2, 3000), -rng.lognormal(0, 1, 500), [0.0, 1500.0, 0.95, 1.2, -0.03]]
    )
    codes = aggregates.bin_codes(values)
    order = np.argsort(values, kind="stable")
    assert np.all(np.diff(codes[order]) >= 0)
    for value, code in zip(values, codes, strict=True):
        low, high = aggregates.bin_range(int(code))
        assert low <= value <= high
        assert high - low <= 0.0101 * abs(value) + 1e-300
    for threshold in (1500.0, 0.95, 1.2, 0.0, -0.03, 2.5e-7, 1 + 0.2, 1 - 0.1):
        code = aggregates.threshold_code(threshold)
        assert code is not None
        assert int(np.count_nonzero(codes < code)) == int(np.count_nonzero(values < threshold))
        assert int(np.count_nonzero(codes == code)) == int(np.count_nonzero(values == threshold))
    assert aggregates.threshold_code(1234.5) is None
    assert aggregates.threshold_code(math.inf) is None


def test_pair_counts_follow_stored_and_purged_pairs(db_session):
    _seed(db_session, "counted", 40, 1.0, 1.0, seed=10)
    insert_pair(db_session, _pair("counted-0", "counted", START, None))  # already stored
    assert repository.pair_window(db_session, "counted")[0] == 40
    assert repository.delete_pairs(db_session, [f"counted-{i}" for i in range(10)])[0] == 10
    assert repository.pair_window(db_session, "counted")[0] == 30
    _assert_same(db_session, _info("counted"))
    _assert_match_rebuild(db_session, "counted")
