"""A real vLLM candidate answering mirrored Messages and Responses requests, native and translated."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest
from sqlalchemy import select

from shadow.simulator.prompts import load_prompts
from storage.db import make_engine, session_scope
from storage.models import RequestPair
from tests.conftest import distributed_settings, wait_for

pytestmark = [pytest.mark.vllm, pytest.mark.integration, pytest.mark.timeout(900)]

SUPPORT = [p for p in load_prompts() if p.kind == "support"][:2]
MAX_TOKENS = 16


def _config(primary: str, vllm_base: str, model: str) -> str:
    root = vllm_base.removesuffix("/v1")
    shadow = "{sample_rate: 1.0, max_in_flight: 2, timeout_s: 120}"
    return (
        "upstreams:\n"
        f"  claude: {{base_url: {primary.removesuffix('/v1')}, api: anthropic}}\n"
        f"  openai: {{base_url: {primary}}}\n"
        f"  vllm-messages: {{base_url: {root}, api: anthropic}}\n"
        f"  vllm-openai: {{base_url: {vllm_base}}}\n"
        f"  vllm-chat-only: {{base_url: {vllm_base}, endpoints: [chat.completions]}}\n"
        "use_cases:\n"
        "  messages-native:\n"
        "    primary: {upstream: claude, model: claude-sonnet-4-5}\n"
        f"    candidate: {{upstream: vllm-messages, model: {model}}}\n"
        f"    shadow: {shadow}\n"
        "  responses-native:\n"
        "    primary: {upstream: openai, model: gpt-4o-mini}\n"
        f"    candidate: {{upstream: vllm-openai, model: {model}}}\n"
        f"    shadow: {shadow}\n"
        "  messages-translated:\n"
        "    primary: {upstream: claude, model: claude-haiku-4-5}\n"
        f"    candidate: {{upstream: vllm-chat-only, model: {model}}}\n"
        f"    shadow: {shadow}\n"
    )


def _pairs(url: str) -> dict[str, RequestPair]:
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            return {p.id: p for p in session.scalars(select(RequestPair)).all()}
    finally:
        engine.dispose()


def _message(client: anthropic.Anthropic, use_case: str, model: str, stream: bool) -> str:
    kwargs: dict[str, Any] = {
        "model": model,
        "max_tokens": MAX_TOKENS,
        "system": "You are a support agent.",
        "messages": [{"role": "user", "content": SUPPORT[int(stream)].prompt_text}],
        "extra_headers": {"X-Switchover-Use-Case": use_case},
    }
    if stream:
        with client.messages.with_streaming_response.create(stream=True, **kwargs) as raw:
            list(raw.iter_lines())
            return str(raw.headers["x-switchover-pair-id"])
    answered = client.messages.with_raw_response.create(**kwargs)
    assert answered.parse().content[0].text
    return str(answered.headers["x-switchover-pair-id"])


def _response(client: openai.OpenAI, stream: bool) -> str:
    kwargs: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "max_output_tokens": MAX_TOKENS,
        "temperature": 0,
        "instructions": "You are a support agent.",
        "input": SUPPORT[int(stream)].prompt_text,
    }
    if stream:
        with client.responses.with_streaming_response.create(stream=True, **kwargs) as raw:
            list(raw.iter_lines())
            return str(raw.headers["x-switchover-pair-id"])
    answered = client.responses.with_raw_response.create(**kwargs)
    assert answered.parse().output_text
    return str(answered.headers["x-switchover-pair-id"])


def test_vllm_answers_messages_and_responses_natively_and_translated(
    vllm_server, simulator, proxy, worker_env, start_worker, postgres_url
):
    primary = simulator(tokens_per_s=400)
    config = _config(primary, vllm_server.base_url, vllm_server.model)
    env = worker_env(config, postgres_url)
    start_worker(env, 2)
    url = proxy(config, distributed_settings(env))
    claude = anthropic.Anthropic(base_url=url, api_key="sk-ant-client", max_retries=0, timeout=60)
    gpt = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-client", max_retries=0, timeout=60)
    expected = {}
    for stream in (False, True):
        expected[_message(claude, "messages-native", "claude-sonnet-4-5", stream)] = (
            "messages-native",
            stream,
        )
        expected[_response(gpt, stream)] = ("responses-native", stream)
        expected[_message(claude, "messages-translated", "claude-haiku-4-5", stream)] = (
            "messages-translated",
            stream,
        )
    wait_for(lambda: set(expected) <= set(_pairs(postgres_url)), timeout=600, interval=1)
    pairs = _pairs(postgres_url)
    for pair_id, (use_case, stream) in expected.items():
        pair = pairs[pair_id]
        assert pair.use_case == use_case
        assert pair.status == "ok", (use_case, pair.candidate_error)
        assert pair.stream is stream
        assert pair.candidate_model == vllm_server.model
        assert pair.candidate_text, (use_case, pair)
        assert pair.candidate_prompt_tokens
        assert pair.candidate_prompt_tokens > 0
        assert pair.candidate_completion_tokens
        assert 0 < pair.candidate_completion_tokens <= MAX_TOKENS
        assert pair.candidate_finish_reason in {"stop", "length"}
        if stream:
            assert 0 < pair.candidate_ttft_ms < pair.candidate_latency_ms
