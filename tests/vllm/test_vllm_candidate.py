"""A real vLLM as a use case's candidate: proxy → Redis → worker → PostgreSQL, real answers."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
from sqlalchemy import func, select

from shadow.simulator.prompts import PromptItem, load_prompts
from storage.db import make_engine, session_scope
from storage.models import RequestPair, Score
from tests.conftest import config_text, distributed_settings, wait_for
from tests.vllm.conftest import vllm_counter

pytestmark = [pytest.mark.vllm, pytest.mark.integration, pytest.mark.timeout(900)]

PROMPTS = load_prompts()
SUPPORT = [p for p in PROMPTS if p.kind == "support"]
CLASSIFY = [p for p in PROMPTS if p.kind == "classification"]
EXTRACT = [p for p in PROMPTS if p.kind == "json_extraction"]
MAX_TOKENS = 24


def _pairs(url: str, use_case: str) -> list[RequestPair]:
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            query = select(RequestPair).where(RequestPair.use_case == use_case)
            return list(session.scalars(query).all())
    finally:
        engine.dispose()


def _scored(url: str, pair_ids: list[str]) -> int:
    """How many of the pairs have their quality scores stored."""
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            query = select(func.count(func.distinct(Score.pair_id))).where(
                Score.pair_id.in_(pair_ids), Score.metric == "quality.semantic_similarity"
            )
            return int(session.scalar(query) or 0)
    finally:
        engine.dispose()


def _kwargs(item: PromptItem, max_tokens: int) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [m.model_dump() for m in item.messages],
        "max_tokens": max_tokens,
        "temperature": 0,
        "seed": 7,
    }
    if item.response_format:
        kwargs["response_format"] = item.response_format
    return kwargs


def _ask(client: openai.OpenAI, item: PromptItem, stream: bool, max_tokens: int) -> str:
    """One request through the proxy; checks the client got the primary's answer."""
    kwargs = _kwargs(item, max_tokens)
    if stream:
        with client.chat.completions.with_streaming_response.create(stream=True, **kwargs) as raw:
            text = "".join(
                chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices
            )
            pair_id: str = raw.headers["x-switchover-pair-id"]
    else:
        raw_answer = client.chat.completions.with_raw_response.create(**kwargs)
        text = raw_answer.parse().choices[0].message.content or ""
        pair_id = raw_answer.headers["x-switchover-pair-id"]
    assert text, "the client did not get the primary's answer"
    return pair_id


def _start(vllm_server, simulator, proxy, worker_env, start_worker, postgres_url, use_case):
    primary = simulator(tokens_per_s=400)
    config = config_text(
        primary,
        vllm_server.base_url,
        use_case=use_case,
        candidate_model=vllm_server.model,
        timeout_s=120,
        max_in_flight=4,
    )
    env = worker_env(config, postgres_url)
    start_worker(env)
    url = proxy(config, distributed_settings(env))
    return openai.OpenAI(base_url=f"{url}/v1", api_key="sk-client", max_retries=0, timeout=60)


def test_real_vllm_candidate_answers_are_stored_with_its_timings_and_token_counts(
    vllm_server, simulator, proxy, worker_env, start_worker, postgres_url
):
    """Mixed stream/non-stream traffic: real text, TTFT/TPOT, token counts equal to vLLM's."""
    client = _start(
        vllm_server, simulator, proxy, worker_env, start_worker, postgres_url, "vllm-real"
    )
    plan = [
        (SUPPORT[0], True),
        (SUPPORT[1], False),
        (SUPPORT[2], True),
        (CLASSIFY[0], False),
        (CLASSIFY[1], True),
        (EXTRACT[0], False),
    ]
    prompt_before = vllm_counter(vllm_server, "vllm:prompt_tokens_total")
    generated_before = vllm_counter(vllm_server, "vllm:generation_tokens_total")
    with ThreadPoolExecutor(3) as pool:
        pair_ids = list(pool.map(lambda p: _ask(client, *p, MAX_TOKENS), plan))
    wait_for(lambda: len(_pairs(postgres_url, "vllm-real")) == len(plan), timeout=300)

    pairs = {p.id: p for p in _pairs(postgres_url, "vllm-real")}
    assert sorted(pairs) == sorted(pair_ids)
    for pair_id, (item, stream) in zip(pair_ids, plan, strict=True):
        pair = pairs[pair_id]
        assert pair.status == "ok", pair.candidate_error
        assert pair.stream is stream
        assert pair.candidate_model == vllm_server.model
        assert pair.candidate_status_code == 200
        assert pair.candidate_text, pair
        if item.kind == "support":
            # Free text from the model itself, not one of the simulator's canned answers (a
            # one-word label could match one honestly, so only the long answers are checked).
            canned = {item.reference, item.paraphrase, item.wrong, pair.primary_text}
            assert pair.candidate_text.strip() not in canned
        assert pair.candidate_latency_ms > 0
        assert pair.candidate_prompt_tokens
        assert pair.candidate_prompt_tokens > 0
        assert pair.candidate_completion_tokens
        assert 0 < pair.candidate_completion_tokens <= MAX_TOKENS
        assert pair.candidate_finish_reason in {"stop", "length"}
        if pair.candidate_finish_reason == "length":
            assert pair.candidate_completion_tokens == MAX_TOKENS
        if stream:
            assert 0 < pair.candidate_ttft_ms < pair.candidate_latency_ms
            if item.kind == "support":  # long answers: more than one token for sure
                assert pair.candidate_tpot_ms is not None
                assert pair.candidate_tpot_ms > 0
        else:
            assert pair.candidate_ttft_ms == pair.candidate_latency_ms
            assert pair.candidate_tpot_ms is None

    # vLLM's own accounting of everything it was asked in this test, against what was stored.
    stored_prompt = sum(p.candidate_prompt_tokens for p in pairs.values())
    stored_generated = sum(p.candidate_completion_tokens for p in pairs.values())

    def counted() -> tuple[float, float]:
        return (
            vllm_counter(vllm_server, "vllm:prompt_tokens_total") - prompt_before,
            vllm_counter(vllm_server, "vllm:generation_tokens_total") - generated_before,
        )

    try:
        wait_for(lambda: counted() == (stored_prompt, stored_generated), timeout=15)
    except pytest.fail.Exception:
        pytest.fail(
            f"vLLM counted (prompt, generated) = {counted()}, stored "
            f"{(stored_prompt, stored_generated)}"
        )

    # Every pair is scored, the real model's answers like any other candidate's.
    wait_for(lambda: _scored(postgres_url, pair_ids) == len(pair_ids), timeout=300)

    # Each pair's prompt count is what vLLM reports for the same request asked directly.
    direct = openai.OpenAI(base_url=vllm_server.base_url, api_key="none", max_retries=0)
    for pair in pairs.values():
        request = json.loads(pair.request_body)
        answer = direct.chat.completions.create(
            model=vllm_server.model, messages=request["messages"], max_tokens=1
        )
        assert answer.usage is not None
        assert answer.usage.prompt_tokens == pair.candidate_prompt_tokens


def test_vllm_rejecting_a_request_is_stored_as_an_http_error(
    vllm_server, vllm_max_model_len, simulator, proxy, worker_env, start_worker, postgres_url
):
    """max_tokens beyond vLLM's context: the client gets the primary's answer, the pair a 400."""
    client = _start(
        vllm_server, simulator, proxy, worker_env, start_worker, postgres_url, "vllm-rejects"
    )
    too_many = vllm_max_model_len + 1  # the simulated primary accepts up to 32768
    pair_ids = [_ask(client, SUPPORT[3], stream, too_many) for stream in (False, True)]
    wait_for(lambda: len(_pairs(postgres_url, "vllm-rejects")) == 2, timeout=120)
    for pair in _pairs(postgres_url, "vllm-rejects"):
        assert pair.id in pair_ids
        assert pair.status == "http_status"
        assert pair.candidate_error_kind == "http_status"
        assert pair.candidate_status_code == 400
        assert "max_tokens" in (pair.candidate_error or "")
        assert pair.candidate_text is None
        assert pair.candidate_latency_ms > 0
        assert pair.primary_status_code == 200
        assert pair.primary_text


def test_replay_against_vllm_finds_its_capacity_and_stores_the_run(
    vllm_server, simulator, proxy, worker_env, start_worker, postgres_url, monkeypatch
):
    """`switchover replay`'s search against the real model: doubling, bisection, a stored run."""
    import asyncio
    from datetime import UTC, datetime

    from shadow.candidate.replay import Slo, find_capacity, load_captured, store_run

    monkeypatch.setenv("SWITCHOVER_DATABASE_URL", postgres_url)
    client = _start(
        vllm_server, simulator, proxy, worker_env, start_worker, postgres_url, "vllm-replay"
    )
    for index, item in enumerate(SUPPORT[:6]):
        _ask(client, item, index % 2 == 0, MAX_TOKENS)
    wait_for(lambda: len(_pairs(postgres_url, "vllm-replay")) == 6, timeout=300)
    captured = load_captured("vllm-replay", 100)
    # a single answer takes ~4 s on this machine's CPU vLLM: the SLO leaves room for a queue
    slo = Slo(quantile=0.95, latency_ms=10_000, error_limit=0.05)
    started = datetime.now(UTC)
    result = asyncio.run(
        find_capacity(
            captured,
            vllm_server.base_url,
            vllm_server.model,
            None,
            slo,
            start_rps=1.0,
            # short steps and a floor: halving from 1 req/s takes at most 12+24+48+96+192 s
            requests_per_step=12,
            min_rps=0.05,
            refine=1,
            timeout_s=60,
        )
    )
    run_id = store_run("vllm-replay", vllm_server.base_url, slo, result, started, datetime.now(UTC))
    print(f"vLLM capacity at p95 <= 10 s: {result.rps_at_slo} req/s over {len(result.steps)} steps")
    # the rate itself is the machine's (2 CPU cores: 0.13-0.25 req/s seen at p95 <= 5 s)
    assert result.rps_at_slo is not None
    assert result.rps_at_slo > 0
    assert any(not step.held for step in result.steps), "the search never found the limit"

    from storage.repository import list_capacity_runs

    engine = make_engine(postgres_url)
    with session_scope(engine) as session:
        runs = list_capacity_runs(session, "vllm-replay")
        assert [run.id for run in runs] == [run_id]
        assert runs[0].rps_at_slo == result.rps_at_slo
        assert len(runs[0].steps) == len(result.steps)
    engine.dispose()
