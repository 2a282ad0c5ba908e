"""The simulated upstream, driven through the official openai SDK over real HTTP."""

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from shadow.simulator.prompts import PROMPTS_FILE, PromptIndex, load_prompts
from shadow.simulator.server import SimulatorConfig, serve_in_thread

SUPPORT_QUESTION = "How do I reset my password?"
WEATHER_QUESTION = "What is the weather in Paris?"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
ITEMS: list[dict[str, Any]] = [
    {
        "id": "support-001",
        "kind": "support",
        "messages": [
            {"role": "system", "content": "You are a helpful support agent."},
            {"role": "user", "content": SUPPORT_QUESTION},
        ],
        "reference": "Open Settings, choose Security and click Reset password.",
        "paraphrase": "Go to Settings, then Security, and press Reset password.",
        "wrong": "Passwords cannot be reset once they are set.",
    },
    {
        "id": "tool-001",
        "kind": "tool_call",
        "messages": [{"role": "user", "content": WEATHER_QUESTION}],
        "reference": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
        "paraphrase": {"name": "get_weather", "arguments": {"city": "Paris"}},
        "wrong": {"name": "get_weather", "arguments": {"city": "London"}},
        "tools": [WEATHER_TOOL],
    },
]
REFERENCE = ITEMS[0]["reference"]


@pytest.fixture(scope="module")
def prompts_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in ITEMS))
    return path


@pytest.fixture
def serve(prompts_path: Path) -> Iterator[Any]:
    """Start a simulator with the given config overrides; stopped at the end of the test."""
    with ExitStack() as stack:

        def start(**overrides: Any) -> str:
            config = SimulatorConfig(prompts_path=prompts_path, **overrides)
            return stack.enter_context(serve_in_thread(config))

        yield start


def client(base_url: str, **options: Any) -> openai.OpenAI:
    options.setdefault("api_key", "x")
    return openai.OpenAI(base_url=base_url, max_retries=0, **options)


def ask(base_url: str, question: str = SUPPORT_QUESTION, **options: Any) -> Any:
    """One chat completion, or the list of its chunks when streamed."""
    with client(base_url) as sdk:
        answer = sdk.chat.completions.create(
            model="sim-model", messages=[{"role": "user", "content": question}], **options
        )
        return list(answer) if options.get("stream") else answer


def stats(base_url: str) -> dict[str, Any]:
    root = base_url.removesuffix("/v1")
    result: dict[str, Any] = httpx.get(f"{root}/sim/stats").json()
    return result


def test_chat_answers_known_prompt_with_reference_and_usage(serve: Any) -> None:
    base_url = serve()
    with client(base_url) as sdk:
        completion = sdk.chat.completions.create(
            model="my-model", messages=ITEMS[0]["messages"], temperature=0
        )

    assert completion.choices[0].message.content == REFERENCE
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "my-model"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_unknown_prompt_gets_a_deterministic_generic_answer(serve: Any) -> None:
    base_url = serve()
    first = ask(base_url, "Tell me something nobody asked before")
    second = ask(base_url, "Tell me something nobody asked before")

    assert first.choices[0].message.content == second.choices[0].message.content
    assert "Tell me something nobody asked before" in first.choices[0].message.content


def test_stream_with_include_usage_yields_the_same_text_and_a_usage_chunk(serve: Any) -> None:
    base_url = serve()
    non_stream = ask(base_url)
    chunks = ask(base_url, stream=True, stream_options={"include_usage": True})

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REFERENCE
    assert len(chunks) > 3  # streamed word by word, not in one piece
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage == non_stream.usage


def test_paced_stream_spaces_tokens(serve: Any) -> None:
    base_url = serve(tokens_per_s=100)
    started = time.perf_counter()
    chunks = ask(base_url, stream=True)
    elapsed = time.perf_counter() - started

    assert "".join(c.choices[0].delta.content or "" for c in chunks) == REFERENCE
    assert elapsed >= (len(REFERENCE.split()) - 1) / 100


def test_tool_call_item_answers_with_reference_arguments(serve: Any) -> None:
    base_url = serve()
    completion = ask(base_url, WEATHER_QUESTION, tools=[WEATHER_TOOL])
    streamed = ask(base_url, WEATHER_QUESTION, tools=[WEATHER_TOOL], stream=True)

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == ITEMS[1]["reference"]["arguments"]
    deltas = [d for c in streamed for d in c.choices[0].delta.tool_calls or []]
    assert deltas[0].id is not None
    assert deltas[0].function.name == "get_weather"
    arguments = "".join(d.function.arguments or "" for d in deltas)
    assert json.loads(arguments) == ITEMS[1]["reference"]["arguments"]
    assert streamed[-1].choices[0].finish_reason == "tool_calls"


def test_answer_mix_picks_the_wrong_answer(serve: Any) -> None:
    base_url = serve(answer_mix={"wrong": 1})

    assert ask(base_url).choices[0].message.content == ITEMS[0]["wrong"]


def test_quality_preset_mixes_answers(serve: Any) -> None:
    base_url = serve(answer_mix="mediocre", seed=7)
    answers = {ask(base_url).choices[0].message.content for _ in range(30)}

    assert answers == {ITEMS[0][variant] for variant in ("reference", "paraphrase", "wrong")}


def test_max_tokens_truncates_with_finish_reason_length(serve: Any) -> None:
    base_url = serve()
    completion = ask(base_url, max_tokens=4)

    assert completion.choices[0].finish_reason == "length"
    assert REFERENCE.startswith(completion.choices[0].message.content)
    assert completion.choices[0].message.content != REFERENCE
    assert completion.usage.completion_tokens <= 4


def test_max_tokens_beyond_context_is_rejected(serve: Any) -> None:
    base_url = serve()

    with pytest.raises(openai.BadRequestError) as caught:
        ask(base_url, max_tokens=40_000)
    assert caught.value.code == "context_length_exceeded"


def test_model_error_429_raises_rate_limit_error(serve: Any) -> None:
    base_url = serve()

    with client(base_url) as sdk, pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(
            model="error-429", messages=[{"role": "user", "content": SUPPORT_QUESTION}]
        )
    assert caught.value.body == {
        "message": "Simulated error 429 requested by model 'error-429'.",
        "type": "rate_limit_exceeded",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.response.headers["x-request-id"].startswith("req_")


def test_required_api_key_rejects_a_wrong_key(serve: Any) -> None:
    base_url = serve(require_api_key="secret")

    with client(base_url, api_key="wrong") as sdk, pytest.raises(openai.AuthenticationError) as e:
        sdk.models.list()
    assert e.value.code == "invalid_api_key"
    with client(base_url, api_key="secret") as sdk:
        assert [model.id for model in sdk.models.list()] == ["sim-model"]


def test_concurrency_limit_queues_requests_beyond_it(serve: Any) -> None:
    base_url = serve(concurrency_limit=2, latency_ms=200)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: ask(base_url), range(6)))
    elapsed = time.perf_counter() - started

    assert [a.choices[0].message.content for a in answers] == [REFERENCE] * 6
    assert elapsed >= 0.55  # three rounds of 200 ms, two requests at a time
    observed = stats(base_url)
    assert observed["max_in_flight"] == 6
    assert observed["in_flight"] == 0
    assert observed["by_path"] == {"/v1/chat/completions": 6}


def test_reset_zeroes_the_stats(serve: Any) -> None:
    base_url = serve()
    ask(base_url)

    httpx.post(base_url.removesuffix("/v1") + "/sim/reset").raise_for_status()
    assert stats(base_url) == {"requests": 0, "in_flight": 0, "max_in_flight": 0, "by_path": {}}


def test_error_rate_one_answers_500(serve: Any) -> None:
    base_url = serve(error_rate=1)

    with pytest.raises(openai.InternalServerError) as caught:
        ask(base_url)
    assert caught.value.status_code == 500
    assert caught.value.type == "server_error"


def test_hang_rate_one_leaves_the_client_to_time_out(serve: Any) -> None:
    base_url = serve(hang_rate=1)

    with client(base_url, timeout=0.5) as sdk, pytest.raises(openai.APITimeoutError):
        sdk.chat.completions.create(
            model="sim-model", messages=[{"role": "user", "content": SUPPORT_QUESTION}]
        )
    deadline = time.monotonic() + 2
    while stats(base_url)["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stats(base_url)["in_flight"] == 0  # the hung request is dropped with its client


def test_garbage_rate_one_sends_invalid_json_and_broken_streams(serve: Any) -> None:
    base_url = serve(garbage_rate=1)
    request = {"model": "m", "messages": [{"role": "user", "content": SUPPORT_QUESTION}]}

    response = httpx.post(f"{base_url}/chat/completions", json=request)
    streamed = httpx.post(f"{base_url}/chat/completions", json={**request, "stream": True})

    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    assert streamed.status_code == 200
    events = [e.removeprefix("data: ") for e in streamed.text.split("\n\n") if e]
    assert "[DONE]" not in events
    with pytest.raises(json.JSONDecodeError):
        json.loads(events[-1])


def test_cut_rate_one_drops_the_connection_half_way(serve: Any) -> None:
    base_url = serve(cut_rate=1)
    request = {"model": "m", "messages": [{"role": "user", "content": SUPPORT_QUESTION}]}

    received = bytearray()

    def read(body: dict[str, Any]) -> None:
        with httpx.stream("POST", f"{base_url}/chat/completions", json=body) as response:
            assert response.status_code == 200
            for chunk in response.iter_raw():
                received.extend(chunk)

    for body in (request, {**request, "stream": True}):
        received.clear()
        with pytest.raises(httpx.RemoteProtocolError):
            read(body)
        assert received, "half of the answer arrives before the cut"


def test_invalid_json_body_is_a_400_openai_error(serve: Any) -> None:
    base_url = serve()

    response = httpx.post(f"{base_url}/chat/completions", content=b"{not json")
    missing = httpx.post(f"{base_url}/chat/completions", json={"model": "m"})

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "messages"


def test_every_response_has_its_own_request_id(serve: Any) -> None:
    base_url = serve()
    with client(base_url) as sdk:
        ok = sdk.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": SUPPORT_QUESTION}]
        )
        again = sdk.models.with_raw_response.list()
    not_found = httpx.get(f"{base_url}/nowhere")

    ids = {r.headers["x-request-id"] for r in (ok, again, not_found)}
    assert len(ids) == 3
    assert all(len(i) == len("req_") + 24 for i in ids)
    assert not_found.status_code == 404


def test_completions_endpoint_answers_and_streams(serve: Any) -> None:
    base_url = serve()
    with client(base_url) as sdk:
        completion = sdk.completions.create(model="legacy", prompt=SUPPORT_QUESTION)
        chunks = list(
            sdk.completions.create(
                model="legacy",
                prompt=[SUPPORT_QUESTION],
                stream=True,
                stream_options={"include_usage": True},
            )
        )

    assert completion.object == "text_completion"
    assert completion.choices[0].text == REFERENCE
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert "".join(c.choices[0].text for c in chunks if c.choices) == REFERENCE
    assert chunks[-1].usage == completion.usage


def test_models_endpoint_lists_the_model_name(serve: Any) -> None:
    base_url = serve(model_name="qwen-sim")

    with client(base_url) as sdk:
        models = list(sdk.models.list())
    assert [(m.id, m.owned_by) for m in models] == [("qwen-sim", "switchover-simulator")]


def test_config_accepts_presets_and_rejects_bad_mixes() -> None:
    assert SimulatorConfig(answer_mix="bad").answer_mix == {"wrong": 0.9, "paraphrase": 0.1}
    assert SimulatorConfig(answer_mix="reference=1,wrong=3").answer_mix == {
        "reference": 1.0,
        "wrong": 3.0,
    }
    with pytest.raises(ValueError, match="answer_mix"):
        SimulatorConfig(answer_mix="excellent")
    with pytest.raises(ValueError, match="exceed 1"):
        SimulatorConfig(error_rate=0.6, hang_rate=0.6)


def test_bad_prompt_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps(ITEMS[0]) + "\n\n" + json.dumps({**ITEMS[1], "wrong": "x"}) + "\n")

    with pytest.raises(ValueError, match=rf"{path.name}:3: "):
        load_prompts(path)


def test_bundled_prompt_set_loads() -> None:
    items = load_prompts()

    assert PROMPTS_FILE.name == "prompts.jsonl"
    assert len(items) >= 150
    assert {item.kind for item in items} == {
        "support",
        "json_extraction",
        "classification",
        "tool_call",
    }
    index = PromptIndex(items)
    assert all(index.get(item.prompt_text) is item for item in items)
