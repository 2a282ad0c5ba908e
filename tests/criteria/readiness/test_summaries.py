"""Score distributions and timelines for charts: pure helpers and the two read endpoints."""

from __future__ import annotations

from datetime import timedelta

import httpx
import numpy as np
import pytest

from criteria.access.auth import create_token
from criteria.readiness.summaries import bin_edges, describe
from shadow.settings import Settings
from storage.db import make_engine, session_scope
from storage.models import Score
from tests.conftest import CapturedJobs
from tests.fixtures.evidence import Evidence, seed_pairs


def test_unbounded_edges_stop_at_the_tail_so_one_timeout_does_not_squash_the_rest():
    values = np.concatenate([np.linspace(100, 200, 199), [60_000.0]])
    edges = bin_edges([values], 10, bounded=False)
    assert edges[0] == 100
    assert edges[-1] < 300
    summary = describe("candidate.latency_ms", values, edges)
    assert summary.overflow == 2  # the timeout and the top of the 1% tail
    assert sum(summary.counts) + summary.overflow == 200
    assert summary.max == 60_000
    assert summary.label == "self-hosted latency (ms)"


def test_bounded_edges_cover_every_value_and_constant_samples_get_a_bin():
    scores = np.array([0.2, 0.9, 1.0])
    edges = bin_edges([scores, np.array([0.5])], 4, bounded=True)
    assert (edges[0], edges[-1]) == (0.2, 1.0)
    assert sum(describe("quality.rouge_l", scores, edges).counts) == 3
    constant = bin_edges([np.array([1.0, 1.0])], 3, bounded=True)
    assert len(constant) == 4
    assert constant[0] < 1.0 < constant[-1]
    assert bin_edges([np.empty(0)], 3, bounded=True).size == 0


@pytest.fixture
def service(simulator, proxy, sqlite_url, monkeypatch):
    monkeypatch.setenv("SWITCHOVER_DATABASE_URL", sqlite_url)
    seed_pairs(sqlite_url, "chat", Evidence(pairs=120, error_rate=0.1, step=timedelta(minutes=5)))
    engine = make_engine(sqlite_url)
    with session_scope(engine) as session:
        session.add(Score(pair_id="chat-0", metric="quality.bleu", value=None, error="failed"))
        token = create_token(session, "viewer", "dashboard")
    engine.dispose()
    config = (
        "upstreams:\n"
        f"  api: {{base_url: {simulator()}}}\n"
        f"  gpu: {{base_url: {simulator()}}}\n"
        "use_cases:\n"
        "  chat: {primary: {upstream: api, model: m1}, candidate: {upstream: gpu, model: c}}\n"
        "  quiet: {primary: {upstream: api, model: m2}, candidate: {upstream: gpu, model: c}}\n"
    )
    url = proxy(config, Settings(broker_url=None), CapturedJobs().publish)
    return url, token


def _get(url, path, token, **params):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{url}/api/v1{path}", params=params, headers=headers, timeout=30)


def test_distributions_share_edges_and_count_every_scored_pair(service):
    url, token = service
    assert (
        _get(url, "/use-cases/chat/distributions", None, metric="latency.ratio").status_code == 401
    )
    body = _get(
        url,
        "/use-cases/chat/distributions",
        token,
        metric=["primary.latency_ms", "candidate.latency_ms"],
        bins=12,
    ).json()
    primary, candidate = body["metrics"]
    assert primary["edges"] == candidate["edges"]
    assert len(primary["edges"]) == 13
    assert primary["n"] == candidate["n"] == 120
    for metric in (primary, candidate):
        assert sum(metric["counts"]) + metric["overflow"] == metric["n"]
        assert metric["p50"] <= metric["p95"] <= metric["p99"] <= metric["max"]
    assert candidate["label"] == "self-hosted latency (ms)"


def test_distributions_of_quality_scores_on_their_own_edges(service):
    url, token = service
    body = _get(
        url,
        "/use-cases/chat/distributions",
        token,
        metric=[
            "quality.rouge_l",
            "quality.json_valid",
            "quality.bleu",
            "noise.semantic_similarity",
        ],
        shared="false",
    ).json()
    by_metric = {m["metric"]: m for m in body["metrics"]}
    errors = 120 - by_metric["quality.rouge_l"]["n"]
    assert errors > 0  # failed pairs have no quality score
    valid = by_metric["quality.json_valid"]
    assert valid["binary"]
    assert 0.8 < valid["mean"] <= 1
    assert by_metric["quality.bleu"]["n"] == 0  # a failed evaluation is no score
    assert by_metric["quality.bleu"]["counts"] == []
    assert by_metric["noise.semantic_similarity"]["n"] == 30  # every 4th pair
    assert by_metric["quality.rouge_l"]["edges"] != by_metric["noise.semantic_similarity"]["edges"]


def test_distributions_reject_unknown_metrics_figures_and_use_cases(service):
    url, token = service
    unknown = _get(url, "/use-cases/chat/distributions", token, metric="quality.rouge")
    assert unknown.status_code == 422
    assert "unknown metric 'quality.rouge'" in unknown.json()["detail"]
    figure = _get(url, "/use-cases/chat/distributions", token, metric="capacity.rps_at_slo")
    assert figure.status_code == 422
    assert "use-case figure" in figure.json()["detail"]
    assert _get(url, "/use-cases/chat/distributions", token).status_code == 422  # no metric
    assert _get(url, "/use-cases/nope/timeline", token, metric="latency.ratio").status_code == 404


def test_timeline_buckets_the_window_in_time_order(service):
    url, token = service
    body = _get(url, "/use-cases/chat/timeline", token, metric="latency.ratio", buckets=6).json()
    assert body["label"] == "latency, self-hosted / API"
    points = body["points"]
    assert len(points) == 6
    assert sum(p["n"] for p in points) == 120
    starts = [p["start"] for p in points]
    assert starts == sorted(starts)
    assert starts[0].startswith("2026-11-20T00:00:00")
    assert all(p["p50"] <= p["p90"] for p in points)
    quiet = _get(url, "/use-cases/quiet/timeline", token, metric="latency.ratio").json()
    assert quiet["points"] == []
