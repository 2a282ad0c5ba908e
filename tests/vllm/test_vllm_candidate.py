"""A real vLLM as a use case's candidate: proxy → Redis → worker → PostgreSQL, real answers."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
from sqlalchemy import select

from shadow.simulator.prompts import PromptItem, load_prompts
from storage.db import make_engine, session_scope
from storage.models import RequestPair
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
