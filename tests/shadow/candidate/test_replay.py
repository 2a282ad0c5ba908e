"""Capacity replay against simulated candidates with a known capacity and burst pattern."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy.stats import ks_2samp

from shadow.candidate.replay import (
    Captured,
    Slo,
    captured_from_rows,
    find_capacity,
    in_candidate_form,
    schedule,
)
from storage.db import make_engine, session_scope
from storage.repository import insert_pair
from storage.schemas import AnswerFields, PairCreate
from tests.conftest import VENV_BIN

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Where is my order?"}]}


def _rows(offsets):
    start = datetime(2026, 11, 27, tzinfo=UTC)
    return [
        (start + timedelta(seconds=float(o)), "chat.completions", False, json.dumps(BODY))
        for o in offsets
    ]


def test_rps_at_slo_is_within_20_percent_of_the_analytic_capacity(simulator):
    """4 slots x 200 ms per request = 20 requests/s; the SLO p95 <= 300 ms holds up to there."""
    candidate = simulator(latency_ms=200, concurrency_limit=4)
    captured = captured_from_rows(_rows(np.arange(200) * 0.5))  # steady traffic, 2/s
    result = asyncio.run(
        find_capacity(
            captured,
            candidate,
            "llama",
            None,
            Slo(0.95, 300, 0.01),
            start_rps=5,
            requests_per_step=80,
            timeout_s=10,
        )
    )
    rates = [round(s.offered_rps, 1) for s in result.steps]
    assert result.rps_at_slo is not None, rates
    assert 16 <= result.rps_at_slo <= 24, (result.rps_at_slo, rates)
    broken = [s for s in result.steps if not s.held]
    assert broken
    assert all(s.offered_rps > 20 for s in broken)


def test_replay_keeps_the_burst_pattern(simulator):
    """Bursty captured traffic is replayed bursty: same inter-arrival shape, compressed."""
    rng = np.random.default_rng(3)
    gaps = rng.gamma(0.3, 1 / 0.3, size=150)  # coefficient of variation ~1.8: bursts and lulls
    captured = captured_from_rows(_rows(np.concatenate(([0], np.cumsum(gaps)))))
    candidate = simulator()
    result = asyncio.run(
        find_capacity(
            captured,
            candidate,
            "llama",
            None,
            Slo(0.95, 5000, 0.5),
            start_rps=1,
            rates=[40.0],
            requests_per_step=150,
        )
    )
    sent = np.diff(result.steps[0].send_offsets_s)
    replayed = sent / sent.mean()
    original = gaps[: len(replayed)] / gaps[: len(replayed)].mean()
    assert ks_2samp(replayed, original).pvalue > 0.01
    assert replayed.std() == pytest.approx(original.std(), rel=0.25)
    # the comparison can tell patterns apart: evenly spaced traffic is rejected
    assert ks_2samp(np.ones_like(original), original).pvalue < 1e-6


def test_schedule_scales_to_the_target_rate_and_cycles():
    captured = [Captured(t, "chat.completions", False, BODY) for t in (0, 1, 1, 4)]
    plan = schedule(captured, rate=2.0, count=7)
    times = [t for t, _ in plan]
    # captured gaps 1, 0, 3 (mean 4/3) scaled to a mean of 0.5 s: 0.375, 0, 1.125, then again
    assert times == pytest.approx([0, 0.375, 0.375, 1.5, 1.875, 1.875, 3.0])
    assert [c.offset_s for _, c in plan][:5] == [0, 1, 1, 4, 0]


def test_replay_command_stores_a_run_and_feeds_capacity_and_cost(simulator, tmp_path, sqlite_url):
    candidate = simulator(latency_ms=50, concurrency_limit=2)
    config = tmp_path / "switchover.yaml"
    config.write_text(
        "upstreams:\n"
        f"  api: {{base_url: {simulator()}}}\n"
        f"  gpu: {{base_url: {candidate}, deployment: {{gpu: L4, hourly_usd: 0.8,"
        " ops_hours_per_week: 2, engineer_hourly_usd: 100}}\n"
        "use_cases:\n"
        "  chat:\n"
        "    primary: {upstream: api, model: gpt-4o-mini}\n"
        "    candidate: {upstream: gpu, model: llama}\n"
        "    shadow: {sample_rate: 0.5}\n"
        "    criteria: {criteria: [{name: capacity, metric: capacity.rps_at_slo, op: '>=',"
        " threshold: 10}, {name: p95, metric: candidate.latency_ms, stat: quantile, q: 0.95,"
        " op: '<=', threshold: 200}]}\n"
    )
    engine = make_engine(sqlite_url)
    with session_scope(engine) as session:
        for i, (at, _, _, body) in enumerate(_rows(np.arange(60) * 0.25)):
            insert_pair(
                session,
                PairCreate(
                    id=f"p{i}",
                    use_case="chat",
                    endpoint="chat.completions",
                    stream=False,
                    created_at=at,
                    request_body=body,
                    request_sha256="0" * 64,
                    primary_model="gpt-4o-mini",
                    primary_request_id=None,
                    primary=AnswerFields(status_code=200, text="ok", latency_ms=100),
                    candidate_model="llama",
                    candidate=AnswerFields(status_code=200, text="ok", latency_ms=60),
                ),
            )
    engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHOVER_")}
    env |= {"SWITCHOVER_CONFIG": str(config), "SWITCHOVER_DATABASE_URL": sqlite_url}
    done = subprocess.run(
        [str(VENV_BIN / "switchover"), "replay", "--use-case", "chat", "--requests-per-step", "60"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert "capacity.rps_at_slo =" in done.stdout

    from criteria.cost.service import cost_projection
    from criteria.readiness.service import evaluate
    from shadow.catalog import catalog_for
    from shadow.config import load_config
    from storage.repository import latest_capacity

    info = catalog_for(load_config(config), tmp_path).get("chat")
    with session_scope(make_engine(sqlite_url)) as session:
        capacity = latest_capacity(session, "chat")
        # 2 slots x 50 ms = 40 requests/s
        assert capacity is not None
        assert 28 <= capacity <= 48
        readiness = evaluate(session, info)
        row = next(c for c in readiness.criteria if c.name == "capacity")
        assert row.verdict == "PASS"
        assert row.estimate == pytest.approx(capacity)
        projection = cost_projection(session, info)
    assert projection.inputs["rps_at_slo"] == pytest.approx(capacity)
    assert projection.monthly_candidate_usd is not None
    assert projection.monthly_primary_usd is None  # no prices scored in this test
    assert any("monthly_primary_usd" in m for m in projection.missing)


def test_a_start_above_capacity_steps_down_until_a_rate_holds(simulator):
    """The observed peak may already be too much: the search halves, then bisects."""
    candidate = simulator(latency_ms=200, concurrency_limit=2)  # 10 requests/s
    captured = captured_from_rows(_rows(np.arange(100) * 0.1))
    result = asyncio.run(
        find_capacity(
            captured,
            candidate,
            "llama",
            None,
            Slo(0.95, 300, 0.01),
            start_rps=40,
            requests_per_step=40,
            timeout_s=10,
        )
    )
    offered = [round(s.offered_rps) for s in result.steps]
    assert offered[:3] == [40, 20, 10], offered
    assert result.rps_at_slo is not None, offered
    assert 7 <= result.rps_at_slo <= 12, (result.rps_at_slo, offered)


MESSAGES_BODY = {
    "model": "claude-haiku-4-5",
    "max_tokens": 64,
    "system": "You are a support agent.",
    "messages": [{"role": "user", "content": "Where is my order?"}],
}
RESPONSES_BODY = {"model": "gpt-4o-mini", "input": "Where is my order?", "stream": True}


def test_captured_requests_of_every_family_reach_the_candidate_in_the_form_it_serves(simulator):
    """A chat-only candidate is sent Messages and Responses captures as chat, as the worker
    sends them; each answer parses (no errors), and what cannot be translated is left out."""
    candidate = simulator(latency_ms=20)
    start = datetime(2026, 11, 27, tzinfo=UTC)
    captured = captured_from_rows(
        [
            (start + timedelta(seconds=i * 0.1), endpoint, stream, json.dumps(body))
            for i, (endpoint, stream, body) in enumerate(
                [("messages", False, MESSAGES_BODY), ("responses", True, RESPONSES_BODY),
                 ("chat.completions", False, BODY),
                 ("messages", False, {**MESSAGES_BODY, "container": "c-1"})] * 10
            )
        ]
    )  # fmt: skip
    ready, left_out = in_candidate_form(captured, ("chat.completions",))
    assert left_out == 10
    assert {c.endpoint for c in ready} == {"chat.completions"}
    assert sum(c.stream for c in ready) == 10
    assert all("messages" in c.body and "system" not in c.body for c in ready)
    result = asyncio.run(
        find_capacity(
            ready, candidate, "llama", None, Slo(0.95, 5000, 0.01), start_rps=1,
            rates=[10.0], requests_per_step=30, timeout_s=10,
        )
    )  # fmt: skip
    assert result.steps[0].requests == 30
    assert result.steps[0].errors == 0
    assert result.steps[0].ttft_p50_ms is not None


def test_a_candidate_that_holds_no_rate_ends_as_not_reached_in_bounded_steps(simulator):
    """Halving stops at `min_rps`, not after a dozen ever longer steps."""
    candidate = simulator(latency_ms=400)  # over the 100 ms SLO at any rate
    captured = captured_from_rows(_rows(np.arange(40) * 0.05))
    result = asyncio.run(
        find_capacity(
            captured, candidate, "llama", None, Slo(0.95, 100, 0.01), start_rps=20,
            requests_per_step=20, timeout_s=10, min_rps=4,
        )
    )  # fmt: skip
    assert result.rps_at_slo is None
    assert [round(s.offered_rps) for s in result.steps] == [20, 10, 5]
