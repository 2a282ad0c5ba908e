"""Messages and Responses mirrored end to end: proxy -> Redis -> real worker -> stored, scored."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest
from sqlalchemy import select

from shadow.simulator.prompts import load_prompts
from storage.db import make_engine, session_scope
from storage.models import RequestPair, Score
from tests.conftest import distributed_settings, table_dump, wait_for

pytestmark = pytest.mark.integration

PROMPTS = load_prompts()
SUPPORT = [p for p in PROMPTS if p.kind == "support"][:3]
TOOL = next(p for p in PROMPTS if p.kind == "tool_call")
PLANTED = "sk-ant-api03-PLANTED-x-api-key-9876543210"


def _config(primary: str, primary_api: str, candidate: str, use_case: str) -> str:
    base = primary.removesuffix("/v1") if primary_api == "anthropic" else primary
    return (
        "upstreams:\n"
        f"  api: {{base_url: {base}, api: {primary_api}}}\n"
        f"  gpu: {{base_url: {candidate}}}\n"
        "use_cases:\n"
        f"  {use_case}:\n"
        "    primary: {upstream: api, model: claude-sonnet-4-5}\n"
        "    candidate: {upstream: gpu, model: cand-model}\n"
        "    shadow: {sample_rate: 1.0, max_in_flight: 4, timeout_s: 20}\n"
    )


def _stored(url: str, use_case: str) -> dict[str, RequestPair]:
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            query = select(RequestPair).where(RequestPair.use_case == use_case)
            return {p.id: p for p in session.scalars(query).all()}
    finally:
        engine.dispose()


def _scores(url: str, pair_ids: list[str]) -> dict[tuple[str, str], float | None]:
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            rows = session.scalars(select(Score).where(Score.pair_id.in_(pair_ids))).all()
            return {(s.pair_id, s.metric): s.value for s in rows}
    finally:
        engine.dispose()


def _anthropic_tools() -> list[dict[str, Any]]:
    return [
        {"name": t["function"]["name"], "description": t["function"].get("description", ""),
         "input_schema": t["function"]["parameters"]}
        for t in TOOL.tools or ()
    ]  # fmt: skip


def test_messages_primary_with_a_chat_completions_candidate(
    simulator, proxy, worker_env, start_worker, postgres_url, caplog
):
    """Translated: Anthropic SDK in front, a chat-only candidate behind; no key kept anywhere."""
    primary = simulator(tokens_per_s=400, require_api_key=PLANTED)
    candidate = simulator(tokens_per_s=400, answer_mix={"paraphrase": 1.0})
    config = _config(primary, "anthropic", candidate, "claude-chat")
    env = worker_env(config, postgres_url)
    worker = start_worker(env)
    url = proxy(config, distributed_settings(env))
    # the key as `x-api-key` (Claude Code, older SDKs); the primary has none configured
    client = anthropic.Anthropic(
        base_url=url,
        api_key=None,
        default_headers={"X-Api-Key": PLANTED},
        max_retries=0,
        timeout=30,
    )
    pair_ids = []
    with caplog.at_level("DEBUG"):
        for number, item in enumerate(SUPPORT):
            kwargs: dict[str, Any] = {
                "model": "claude-sonnet-4-5",
                "max_tokens": 256,
                "system": "You are a support agent.",
                "messages": [{"role": "user", "content": item.prompt_text}],
            }
            if number % 2:
                with client.messages.with_streaming_response.create(stream=True, **kwargs) as raw:
                    list(raw.iter_lines())
                    pair_ids.append(raw.headers["x-switchover-pair-id"])
            else:
                raw = client.messages.with_raw_response.create(**kwargs)
                assert raw.parse().content[0].text == item.reference
                pair_ids.append(raw.headers["x-switchover-pair-id"])
        raw = client.messages.with_raw_response.create(
            model="claude-sonnet-4-5",
            max_tokens=256,
            messages=[{"role": "user", "content": TOOL.prompt_text}],
            tools=_anthropic_tools(),
        )
        pair_ids.append(raw.headers["x-switchover-pair-id"])
        wait_for(lambda: len(_stored(postgres_url, "claude-chat")) == 4, timeout=90)
        wait_for(
            lambda: (
                sum(m == "quality.semantic_similarity" for _, m in _scores(postgres_url, pair_ids))
                >= 3
            ),
            timeout=240,
        )
    pairs = _stored(postgres_url, "claude-chat")
    assert sorted(pairs) == sorted(pair_ids)
    for pair_id, item in zip(pair_ids[:3], SUPPORT, strict=True):
        pair = pairs[pair_id]
        assert pair.status == "ok", pair.candidate_error
        assert pair.endpoint == "messages"
        assert pair.primary_text == item.reference
        assert pair.candidate_text == item.paraphrase
        assert pair.primary_finish_reason == pair.candidate_finish_reason == "stop"
        assert pair.primary_completion_tokens > 0
        assert pair.candidate_prompt_tokens > 0
        if pair.stream:
            assert 0 < pair.primary_ttft_ms < pair.primary_latency_ms
            assert 0 < pair.candidate_ttft_ms < pair.candidate_latency_ms
    tool_pair = pairs[pair_ids[3]]
    assert tool_pair.primary_tool_calls[0]["function"]["name"] == TOOL.reference.name
    scores = _scores(postgres_url, pair_ids)
    wait_for(
        lambda: (pair_ids[3], "quality.tool_call_match") in _scores(postgres_url, pair_ids),
        timeout=120,
    )
    scores = _scores(postgres_url, pair_ids)
    assert (pair_ids[3], "quality.tool_call_match") in scores
    assert (pair_ids[0], "cost.primary_usd") in scores  # Claude's price is in the table
    worker.stop()
    assert PLANTED not in table_dump(postgres_url)
    assert PLANTED not in caplog.text
    assert PLANTED not in "".join(worker.output)


def test_responses_primary_with_a_responses_candidate(
    simulator, proxy, worker_env, start_worker, postgres_url
):
    """Native: the candidate answers Responses; a chained turn is mirrored with its history."""
    primary = simulator(tokens_per_s=400)
    candidate = simulator(tokens_per_s=400, answer_mix={"paraphrase": 1.0})
    config = _config(primary, "openai", candidate, "responses-native").replace(
        "claude-sonnet-4-5", "gpt-4o-mini"
    )
    env = worker_env(config, postgres_url)
    start_worker(env)
    url = proxy(config, distributed_settings(env))
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-client", max_retries=0, timeout=30)
    first = client.responses.with_raw_response.create(
        model="gpt-4o-mini", input=SUPPORT[0].prompt_text
    )
    with client.responses.with_streaming_response.create(
        model="gpt-4o-mini",
        input=SUPPORT[1].prompt_text,
        previous_response_id=first.parse().id,
        stream=True,
    ) as raw:
        list(raw.iter_lines())
        second_id = raw.headers["x-switchover-pair-id"]
    tools = [{"type": "function", **t["function"]} for t in TOOL.tools]
    tool = client.responses.with_raw_response.create(
        model="gpt-4o-mini", input=TOOL.prompt_text, tools=tools
    )
    pair_ids = [
        first.headers["x-switchover-pair-id"],
        second_id,
        tool.headers["x-switchover-pair-id"],
    ]
    wait_for(lambda: len(_stored(postgres_url, "responses-native")) == 3, timeout=90)
    pairs = _stored(postgres_url, "responses-native")
    for pair_id, item in zip(pair_ids[:2], SUPPORT, strict=False):
        pair = pairs[pair_id]
        assert pair.status == "ok", pair.candidate_error
        assert pair.primary_text == item.reference
        assert pair.candidate_text == item.paraphrase
    assert pairs[second_id].stream
    assert pairs[second_id].candidate_ttft_ms > 0
    assert json.loads(pairs[second_id].request_body)["previous_response_id"]
    tool_pair = pairs[pair_ids[2]]
    assert tool_pair.status == "ok"
    assert tool_pair.candidate_tool_calls[0]["function"]["name"] == TOOL.reference.name
    assert tool_pair.candidate_finish_reason == "tool_calls"
    wait_for(
        lambda: (pair_ids[2], "quality.tool_call_match") in _scores(postgres_url, pair_ids),
        timeout=240,
    )
    same = TOOL.paraphrase.model_dump() == TOOL.reference.model_dump()
    assert _scores(postgres_url, pair_ids)[(pair_ids[2], "quality.tool_call_match")] == float(same)
