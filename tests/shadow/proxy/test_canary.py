"""Canary and candidate modes on the hot path: live share, fallback, reverse shadow jobs."""

from __future__ import annotations

import json
import logging
import time

import httpx
import openai
import pytest
from scipy.stats import binom

from shadow.config import ConfigError, parse_config
from shadow.jobs import CandidateCapture, PrimaryCapture, ShadowJob
from shadow.serving import free_port
from shadow.settings import Settings
from shadow.simulator.prompts import load_prompts
from shadow.worker.measure import build_runtime, measure_pair
from storage.db import make_engine, session_scope
from storage.repository import live_counts
from tests.conftest import CapturedJobs, config_text, wait_for

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

SUPPORT = next(p for p in load_prompts() if p.kind == "support" and not p.tools)
MESSAGES = [m.model_dump() for m in SUPPORT.messages]


def _config(primary: str, candidate: str, mode: str, **rollout: object) -> str:
    plan = {"first_byte_timeout_s": 0.5} | rollout
    plan_text = ", ".join(f"{k}: {v}" for k, v in plan.items())
    # The primary has its own key: a reverse shadow never reuses the client's.
    text = config_text(primary, candidate, primary_key_env="TEST_PRIMARY_KEY")
    return text + f"    mode: {mode}\n    rollout: {{{plan_text}}}\n"


def _client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="client-key", max_retries=0, timeout=30)


def _stored_counts(database_url: str) -> dict[str, int]:
    engine = make_engine(database_url)
    try:
        with session_scope(engine) as session:
            return live_counts(session, "default", _an_hour_ago())
    finally:
        engine.dispose()


def _an_hour_ago():
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) - timedelta(hours=1)


@pytest.fixture
def database(sqlite_url, monkeypatch):
    monkeypatch.setenv("SWITCHOVER_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("TEST_PRIMARY_KEY", "sk-primary")
    return sqlite_url


def test_canary_at_25_percent_serves_a_binomial_share_from_the_candidate(
    database, simulator, proxy
):
    jobs = CapturedJobs()
    primary, candidate = simulator(), simulator()
    config = _config(primary, candidate, "canary", initial_percent=25)
    url = proxy(config, Settings(broker_url=None, rollout_sync_s=0.2), jobs.publish)
    client = _client(url)
    n = 400
    served = []
    for _ in range(n):
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MESSAGES
        )
        assert raw.parse().choices[0].message.content == SUPPORT.reference
        served.append(raw.headers["x-switchover-served-by"])
    by_candidate = served.count("candidate")
    low, high = binom.interval(0.999, n, 0.25)
    log.info(
        "canary 25 %%: %d of %d by the candidate (99.9 %% interval %d..%d)",
        by_candidate,
        n,
        low,
        high,
    )
    assert low <= by_candidate <= high
    assert served.count("primary") == n - by_candidate
    # every request was sampled: candidate answers go to the primary, the others to the candidate
    wait_for(lambda: len(jobs) == n, timeout=10)
    reverse = [job for job in jobs if job.primary is None]
    assert len(reverse) == by_candidate
    assert all(job.candidate and job.candidate.error is None for job in reverse)
    assert all(job.candidate is None for job in jobs if job.primary is not None)
    wait_for(lambda: _stored_counts(database) == {"candidate": by_candidate}, timeout=10)


def _ask_both_ways(client):
    """One non-streamed and one streamed request; the answers must be the primary's, complete."""
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raw.parse().choices[0].message.content == SUPPORT.reference
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    ) as streamed:
        text = "".join(c.choices[0].delta.content or "" for c in streamed.parse() if c.choices)
        assert text == SUPPORT.reference
        return [raw.headers, streamed.headers]


@pytest.mark.parametrize(
    ("broken", "reason"),
    [({"error_rate": 1.0}, "http_status"), ({"hang_rate": 1.0}, "timeout"), (None, "connection")],
)
def test_a_failing_candidate_falls_back_to_the_primary(database, simulator, proxy, broken, reason):
    jobs = CapturedJobs()
    primary = simulator()
    candidate = simulator(**broken) if broken else f"http://127.0.0.1:{free_port()}/v1"
    url = proxy(
        _config(primary, candidate, "candidate"),
        Settings(broker_url=None, rollout_sync_s=0.2),
        jobs.publish,
    )
    started = time.perf_counter()
    for headers in _ask_both_ways(_client(url)):
        assert headers["x-switchover-served-by"] == "primary"
        assert headers["x-switchover-fallback"] == reason
    if reason == "timeout":  # two requests, each waited the first-byte timeout once
        assert time.perf_counter() - started < 2 * 0.5 + 2
    wait_for(lambda: len(jobs) == 2, timeout=10)
    for job in jobs:
        assert job.primary is not None
        assert job.primary.status_code == 200
        assert job.candidate is not None
        assert job.candidate.error_kind == reason
    wait_for(lambda: _stored_counts(database) == {f"fallback_{reason}": 2}, timeout=10)
    metrics = httpx.get(f"{url}/metrics").text
    assert (
        f'switchover_live_candidate_total{{outcome="fallback_{reason}",use_case="default"}} 2.0'
        in metrics
    )


def test_candidate_mode_streams_the_candidates_answer(database, simulator, proxy):
    jobs = CapturedJobs()
    url = proxy(
        _config(simulator(), simulator(answer_mix={"paraphrase": 1.0}), "candidate"),
        Settings(broker_url=None, rollout_sync_s=0.2),
        jobs.publish,
    )
    client = _client(url)
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    ) as streamed:
        chunks = list(streamed.parse())
        assert streamed.headers["x-switchover-served-by"] == "candidate"
        assert "x-switchover-fallback" not in streamed.headers
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == SUPPORT.paraphrase
    assert chunks[0].model == "cand-model"  # the answer names the model that wrote it
    wait_for(lambda: len(jobs) == 1, timeout=10)
    assert jobs[0].primary is None
    assert jobs[0].candidate.arrivals


def test_a_stream_cut_after_its_first_byte_cannot_be_hidden_and_is_counted(
    database, simulator, proxy
):
    url = proxy(
        _config(simulator(), simulator(cut_rate=1.0), "candidate"),
        Settings(broker_url=None, rollout_sync_s=0.2),
        CapturedJobs().publish,
    )
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
    received = []
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30) as response:
        assert response.headers["x-switchover-served-by"] == "candidate"
        with pytest.raises(httpx.RemoteProtocolError):
            received.extend(response.iter_raw())
    assert received  # the client had part of the answer when it broke off
    wait_for(lambda: _stored_counts(database) == {"broken": 1}, timeout=10)


def test_the_worker_measures_reverse_and_fallback_pairs_the_same_way_round(simulator):
    primary, candidate = simulator(), simulator()
    config = parse_config(_config(primary, candidate, "candidate"), "<test>")
    runtime = build_runtime(Settings(), config)
    request = '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "%s"}]}'
    body = request % MESSAGES[-1]["content"]
    base = {
        "use_case": "default",
        "endpoint": "chat.completions",
        "received_at": time.time(),
        "request_body": body,
        "stream": False,
        "client_auth": False,
    }
    answer = (
        '{"choices": [{"index": 0, "message": {"role": "assistant", "content": "live words"},'
        ' "finish_reason": "stop"}], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}'
    )
    reverse = ShadowJob(
        pair_id="r1",
        primary=None,
        candidate=CandidateCapture(status_code=200, body=answer, latency_ms=12, first_byte_ms=12),
        **base,
    )
    pair = measure_pair(runtime, reverse)
    assert pair is not None
    assert pair.candidate.text == "live words"  # the live answer, as measured on the way
    assert pair.primary.text == SUPPORT.reference  # asked by the worker
    assert pair.candidate_model == "cand-model"
    fallback = ShadowJob(
        pair_id="f1",
        primary=PrimaryCapture(status_code=200, body=answer, latency_ms=30, first_byte_ms=30),
        candidate=CandidateCapture(latency_ms=500, error="no first byte", error_kind="timeout"),
        **base,
    )
    pair = measure_pair(runtime, fallback)
    assert pair is not None
    assert pair.status == "timeout"
    assert pair.candidate.latency_ms == 500
    assert pair.primary.text == "live words"
    runtime.client.close()


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["    mode: blue"], "sw.yaml:9: use_cases.default.mode: Input should be 'shadow'"),
        (
            ["    rollout:", "      steps: [5, 1, 100]"],
            "sw.yaml:9: use_cases.default.rollout: steps must increase",
        ),
        (
            ["    rollout:", "      min_step_duration: 2 fortnights"],
            "sw.yaml:10: use_cases.default.rollout.min_step_duration: '2 fortnights' is not a "
            "duration",
        ),
    ],
)
def test_a_bad_rollout_section_names_the_line(lines, expected):
    text = config_text("http://a/v1", "http://b/v1") + "\n".join(lines) + "\n"
    with pytest.raises(ConfigError) as error:
        parse_config(text, "sw.yaml")
    assert expected in str(error.value)


@pytest.mark.parametrize("mode", ["shadow", "candidate"])
def test_a_deeply_nested_request_is_answered_and_mirrored(database, simulator, proxy, mode):
    """Nested past orjson's writing depth (255): the answer comes, the job is handed over."""
    jobs = CapturedJobs()
    url = proxy(
        _config(simulator(), simulator(answer_mix={"paraphrase": 1.0}), mode),
        Settings(broker_url=None, rollout_sync_s=0.2),
        jobs.publish,
    )
    depth = 600
    body = (
        '{"model": "gpt-4o-mini", "messages": ' + json.dumps(MESSAGES) + ', "metadata_blob": '
        + "[" * depth + "]" * depth + "}"
    )  # fmt: skip
    response = httpx.post(
        f"{url}/v1/chat/completions",
        content=body,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    served = "candidate" if mode == "candidate" else "primary"
    assert response.headers["x-switchover-served-by"] == served
    assert response.headers["x-switchover-pair-id"]
    wait_for(lambda: len(jobs) == 1, timeout=10)
    assert jobs[0].request_body == body
