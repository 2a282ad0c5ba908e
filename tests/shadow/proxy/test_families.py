"""Responses and Messages through the proxy with the official SDKs, and everything else passed through."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from shadow.settings import Settings
from shadow.simulator.prompts import load_prompts
from shadow.simulator.server import SimulatorThread
from tests.conftest import CapturedJobs, wait_for

ITEMS = {item.kind: item for item in reversed(load_prompts())}
SUPPORT = ITEMS["support"]
TOOLS = ITEMS["tool_call"]
PLANTED = "sk-ant-planted-x-api-key-0123456789"


def _root(url: str) -> str:
    return url.removesuffix("/v1")


def _config(primary: str, candidate: str, primary_api: str = "openai", **extra: str) -> str:
    base = _root(primary) if primary_api == "anthropic" else primary
    lines = [
        "upstreams:",
        f"  api: {{base_url: {base}, api: {primary_api}}}",
        f"  gpu: {{base_url: {candidate}}}",
        *[f"  {name}: {{base_url: {url}}}" for name, url in extra.items()],
        "use_cases:",
        "  default:",
        "    primary: {upstream: api, model: gpt-4o-mini}",
        "    candidate: {upstream: gpu, model: cand-model}",
        "    shadow: {sample_rate: 1.0, max_in_flight: 4, timeout_s: 10}",
    ]
    return "\n".join(lines) + "\n"


def _tools_anthropic() -> list[dict[str, Any]]:
    return [
        {
            "name": tool["function"]["name"],
            "description": tool["function"].get("description", ""),
            "input_schema": tool["function"]["parameters"],
        }
        for tool in TOOLS.tools or ()
    ]


def _tools_responses() -> list[dict[str, Any]]:
    return [{"type": "function", **tool["function"]} for tool in TOOLS.tools or ()]


def _user_messages(item) -> list[dict[str, str]]:
    return [m.model_dump() for m in item.messages if m.role != "system"]


@pytest.fixture
def responses_setup(simulator, proxy):
    primary = simulator(tokens_per_s=500)
    jobs = CapturedJobs()
    url = proxy(_config(primary, simulator()), Settings(), jobs.publish)
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="client-key", max_retries=0)
    return client, jobs, primary


def _x_api_key_client(url: str) -> anthropic.Anthropic:
    """The Anthropic SDK sending its key as `x-api-key` (as Claude Code and older SDKs do)."""
    return anthropic.Anthropic(
        base_url=url, api_key=None, default_headers={"X-Api-Key": PLANTED}, max_retries=0
    )


@pytest.fixture
def messages_setup(simulator, proxy):
    primary = simulator(tokens_per_s=500, require_api_key=PLANTED)
    jobs = CapturedJobs()
    url = proxy(_config(primary, simulator(), "anthropic"), Settings(), jobs.publish)
    return _x_api_key_client(url), jobs, primary


def test_responses_create_passes_through_and_is_mirrored(responses_setup):
    client, jobs, _ = responses_setup
    raw = client.responses.with_raw_response.create(
        model="gpt-4o-mini", input=SUPPORT.prompt_text, instructions="Be brief."
    )
    response = raw.parse()
    assert response.output_text == SUPPORT.reference
    assert response.usage.output_tokens > 0
    assert raw.headers["x-request-id"].startswith("req_")
    assert float(raw.headers["x-switchover-overhead-ms"]) >= 0
    pair_id = raw.headers["x-switchover-pair-id"]
    wait_for(lambda: jobs)
    assert [job.pair_id for job in jobs] == [pair_id]
    assert jobs[0].endpoint == "responses"
    assert jobs[0].candidate_request is None  # the candidate serves Responses: native


def test_responses_stream_and_tool_call(responses_setup):
    client, jobs, _ = responses_setup
    with client.responses.stream(model="gpt-4o-mini", input=SUPPORT.prompt_text) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert len(deltas) > 3
    assert "".join(deltas) == SUPPORT.reference == final.output_text

    response = client.responses.create(
        model="gpt-4o-mini", input=_user_messages(TOOLS), tools=_tools_responses()
    )
    call = next(item for item in response.output if item.type == "function_call")
    assert call.name == TOOLS.reference.name
    assert json.loads(call.arguments) == TOOLS.reference.arguments
    wait_for(lambda: len(jobs) == 2)
    assert [job.stream for job in jobs] == [True, False]


def test_messages_create_with_the_anthropic_sdk(messages_setup):
    client, jobs, _ = messages_setup
    raw = client.messages.with_raw_response.create(
        model="gpt-4o-mini",
        max_tokens=256,
        system="You are a support agent.",
        messages=[{"role": "user", "content": SUPPORT.prompt_text}],
    )
    message = raw.parse()
    assert message.content[0].text == SUPPORT.reference
    assert message.stop_reason == "end_turn"
    assert raw.headers["request-id"].startswith("req_")
    assert "x-switchover-overhead-ms" in raw.headers
    pair_id = raw.headers["x-switchover-pair-id"]
    wait_for(lambda: jobs)
    job = jobs[0]
    assert job.pair_id == pair_id
    assert job.endpoint == "messages"
    # the candidate speaks chat completions: the request is translated for it
    assert job.candidate_endpoint == "chat.completions"
    translated = json.loads(job.candidate_request)
    assert translated["messages"] == [
        {"role": "system", "content": "You are a support agent."},
        {"role": "user", "content": SUPPORT.prompt_text},
    ]
    assert PLANTED not in job.model_dump_json()


def test_messages_stream_and_tool_use(messages_setup):
    client, jobs, _ = messages_setup
    with client.messages.stream(
        model="gpt-4o-mini",
        max_tokens=256,
        messages=[{"role": "user", "content": SUPPORT.prompt_text}],
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 3
    assert "".join(pieces) == SUPPORT.reference
    assert final.usage.output_tokens > 0

    message = client.messages.create(
        model="gpt-4o-mini",
        max_tokens=256,
        messages=_user_messages(TOOLS),
        tools=_tools_anthropic(),
    )
    block = next(b for b in message.content if b.type == "tool_use")
    assert block.name == TOOLS.reference.name
    assert block.input == TOOLS.reference.arguments
    assert message.stop_reason == "tool_use"
    wait_for(lambda: len(jobs) == 2)
    tools = json.loads(jobs[1].candidate_request)["tools"]
    assert [t["function"]["name"] for t in tools] == [t["name"] for t in _tools_anthropic()]


@pytest.mark.parametrize(
    ("status", "openai_error", "anthropic_error"),
    [
        (400, openai.BadRequestError, anthropic.BadRequestError),
        (401, openai.AuthenticationError, anthropic.AuthenticationError),
        (429, openai.RateLimitError, anthropic.RateLimitError),
        (500, openai.InternalServerError, anthropic.InternalServerError),
    ],
)
def test_upstream_errors_pass_through_in_each_family_form(
    responses_setup, messages_setup, status, openai_error, anthropic_error
):
    client, jobs, primary = responses_setup
    body = {"model": f"error-{status}", "input": "hello"}
    direct = httpx.post(f"{primary}/responses", json=body)
    with pytest.raises(openai_error) as caught:
        client.responses.create(**body)
    assert caught.value.status_code == status
    assert caught.value.response.json() == direct.json()
    assert "x-switchover-pair-id" not in caught.value.response.headers

    client, jobs_m, primary = messages_setup
    body = {"model": f"error-{status}", "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    direct = httpx.post(f"{primary}/messages", json=body, headers={"x-api-key": PLANTED})
    with pytest.raises(anthropic_error) as caught_m:
        client.messages.create(**body)
    error = caught_m.value
    assert error.status_code == status
    assert error.response.json() == direct.json()
    assert error.response.json()["type"] == "error"
    assert error.request_id is not None
    assert jobs == []
    assert jobs_m == []


def test_unreachable_primary_is_a_502_in_each_family_form(simulator, proxy):
    dead = "http://127.0.0.1:9/v1"
    url = proxy(_config(dead, simulator()), Settings(), CapturedJobs().publish)
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        client.responses.create(model="gpt-4o-mini", input="hi")
    assert caught.value.status_code == 502
    assert caught.value.response.json()["error"]["code"] == "upstream_unavailable"

    url = proxy(_config(dead, simulator(), "anthropic"), Settings(), CapturedJobs().publish)
    client_m = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as caught_m:
        client_m.messages.create(
            model="gpt-4o-mini", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught_m.value.status_code == 502
    assert caught_m.value.response.json()["type"] == "error"
    assert caught_m.value.response.json()["error"]["type"] == "api_error"


def skipped(reason: str) -> float:
    labels = {"use_case": "default", "reason": reason}
    return REGISTRY.get_sample_value("switchover_shadow_skipped_total", labels) or 0.0


def test_untranslatable_messages_request_is_skipped_and_counted(messages_setup):
    client, jobs, _ = messages_setup
    before = skipped("untranslatable")
    raw = client.messages.with_raw_response.create(
        model="gpt-4o-mini",
        max_tokens=64,
        extra_body={"top_k": 5},  # no faithful Chat Completions equivalent
        messages=[{"role": "user", "content": SUPPORT.prompt_text}],
    )
    assert raw.parse().content[0].text == SUPPORT.reference
    wait_for(lambda: skipped("untranslatable") - before == 1)
    assert jobs == []


# --- stateful Responses ----------------------------------------------------------------------


def test_three_turn_chain_gets_its_history_written_in(responses_setup):
    client, jobs, _ = responses_setup
    first = client.responses.create(model="gpt-4o-mini", input="Turn one question")
    second = client.responses.create(
        model="gpt-4o-mini", input="Turn two question", previous_response_id=first.id
    )
    client.responses.create(
        model="gpt-4o-mini", input="Turn three question", previous_response_id=second.id
    )
    wait_for(lambda: len(jobs) == 3)
    assert jobs[0].candidate_request is None
    texts = []
    for job in jobs[1:]:
        request = json.loads(job.candidate_request)
        assert "previous_response_id" not in request
        texts.append([_item_text(item) for item in request["input"]])
    assert texts[0] == ["Turn one question", first.output_text, "Turn two question"]
    assert texts[1] == [
        "Turn one question",
        first.output_text,
        "Turn two question",
        second.output_text,
        "Turn three question",
    ]


def _item_text(item: dict[str, Any]) -> str:
    content = item["content"]
    return content if isinstance(content, str) else "".join(p["text"] for p in content)


def test_chain_whose_first_turn_bypassed_switchover_is_skipped(responses_setup):
    client, jobs, primary = responses_setup
    direct = openai.OpenAI(base_url=primary, api_key="k", max_retries=0)
    first = direct.responses.create(model="gpt-4o-mini", input="Asked directly")
    before = skipped("unknown_previous_response")
    answered = client.responses.create(
        model="gpt-4o-mini", input="Through the proxy", previous_response_id=first.id
    )
    assert answered.output_text
    wait_for(lambda: skipped("unknown_previous_response") - before == 1)
    assert jobs == []


# --- passthrough -----------------------------------------------------------------------------


class EchoUpstream:
    """An upstream that records each request and answers in the shape of the path asked."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self._thread: SimulatorThread | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(
            {
                "method": request.method,
                "path": request.path_qs,
                "body": body,
                "headers": dict(request.headers),
            }
        )
        data: dict[str, Any]
        if request.path.endswith("/embeddings"):
            data = {"object": "list", "model": "text-embedding-3-small",
                    "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5]}],
                    "usage": {"prompt_tokens": 2, "total_tokens": 2}}  # fmt: skip
        elif request.path.endswith("/moderations"):
            data = {"id": "modr-1", "model": "omni-moderation-latest",
                    "results": [{"flagged": False, "categories": {}, "category_scores": {}}]}  # fmt: skip
        elif request.path.endswith("/count_tokens"):
            data = {"input_tokens": 11}
        elif request.path.endswith("/files"):
            data = {"id": "file-1", "object": "file", "bytes": len(body), "created_at": 1,
                    "filename": "batch.jsonl", "purpose": "batch"}  # fmt: skip
        else:
            data = {"id": "chatcmpl-echo", "object": "chat.completion", "created": 1,
                    "model": "gpt-4o", "choices": [{"index": 0, "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "from the passthrough"}}]}  # fmt: skip
        return web.json_response(data, headers={"x-request-id": "req_echo"})


@pytest.fixture
def echo() -> Iterator[tuple[EchoUpstream, str]]:
    import asyncio
    import threading

    upstream = EchoUpstream()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", upstream.handle)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield upstream, f"http://127.0.0.1:{port}/v1"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def test_embeddings_moderations_and_files_pass_through_unmirrored(echo, simulator, proxy):
    upstream, echo_url = echo
    jobs = CapturedJobs()
    url = proxy(_config(echo_url, simulator()), Settings(), jobs.publish)
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="client-key", max_retries=0)

    embedding = client.embeddings.create(model="text-embedding-3-small", input="hello")
    assert embedding.data[0].embedding == [0.25, -0.5]
    moderation = client.moderations.create(input="something")
    assert moderation.results[0].flagged is False
    content = b'{"custom_id": "1", "method": "POST", "url": "/v1/chat/completions"}\n' * 50
    uploaded = client.files.create(file=("batch.jsonl", content), purpose="batch")
    assert uploaded.bytes == len(upstream.seen[-1]["body"])

    assert [s["path"] for s in upstream.seen] == ["/v1/embeddings", "/v1/moderations", "/v1/files"]
    assert (
        json.loads(upstream.seen[0]["body"])
        == {"model": "text-embedding-3-small", "input": "hello", "encoding_format": "base64"}
        or json.loads(upstream.seen[0]["body"])["input"] == "hello"
    )
    assert content in upstream.seen[2]["body"]
    assert upstream.seen[2]["headers"]["Authorization"] == "Bearer client-key"
    listed = httpx.get(f"{url}/v1/files?purpose=batch", headers={"authorization": "Bearer k"})
    assert listed.status_code == 200
    assert upstream.seen[-1]["path"] == "/v1/files?purpose=batch"
    assert jobs == []


def test_a_model_outside_every_use_case_follows_passthrough(echo, simulator, proxy):
    upstream, echo_url = echo
    primary = simulator()
    config = (
        _config(primary, simulator(), other=echo_url).replace("  default:", "  mini:")
        + "passthrough: other\n"
    )
    jobs = CapturedJobs()
    url = proxy(config, Settings(), jobs.publish)
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="client-key", max_retries=0)
    answer = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content == "from the passthrough"
    assert json.loads(upstream.seen[-1]["body"])["model"] == "gpt-4o"
    mirrored = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": SUPPORT.prompt_text}]
    )
    assert mirrored.choices[0].message.content == SUPPORT.reference
    wait_for(lambda: jobs)
    assert len(jobs) == 1
    assert len(upstream.seen) == 1


def test_without_passthrough_an_unknown_model_gets_a_404_saying_how_to_route_it(simulator, proxy):
    config = _config(simulator(), simulator()).replace("  default:", "  mini:")
    url = proxy(config, Settings(), CapturedJobs().publish)
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.NotFoundError) as caught:
        client.embeddings.create(model="text-embedding-3-small", input="x")
    assert "passthrough:" in caught.value.message
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert "passthrough:" in caught.value.message


def test_count_tokens_passes_through_to_an_anthropic_primary(echo, simulator, proxy):
    upstream, echo_url = echo
    config = _config(echo_url, simulator(), "anthropic")
    url = proxy(config, Settings(), CapturedJobs().publish)
    client = _x_api_key_client(url)
    counted = client.messages.count_tokens(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
    )
    assert counted.input_tokens == 11
    seen = upstream.seen[-1]
    assert seen["path"] == "/v1/messages/count_tokens"
    assert seen["headers"]["x-api-key"] == PLANTED
    assert "Authorization" not in seen["headers"]
    assert seen["headers"]["anthropic-version"]


def test_a_configured_anthropic_key_replaces_the_clients(simulator, proxy, monkeypatch):
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", "sk-ant-configured")
    primary = simulator(require_api_key="sk-ant-configured")
    config = _config(primary, simulator(), "anthropic").replace(
        "api: anthropic}", "api: anthropic, api_key_env: TEST_ANTHROPIC_KEY}"
    )
    jobs = CapturedJobs()
    url = proxy(config, Settings(), jobs.publish)
    client = anthropic.Anthropic(base_url=url, api_key="sk-ant-client-own", max_retries=0)
    message = client.messages.create(
        model="gpt-4o-mini", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].text
    wait_for(lambda: jobs)
    assert jobs[0].client_auth is False
