"""Calling an upstream from a worker: every outcome is measured, errors and timeouts included."""

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest

from shadow.simulator.server import SimulatorConfig, serve_in_thread
from shadow.worker.caller import call_upstream, tpot_ms
from storage.schemas import AnswerFields

URL = "http://candidate.test/v1/chat/completions"
REQUEST = {"model": "llama", "messages": [{"role": "user", "content": "Where is Paris?"}]}
STREAM_REQUEST = {**REQUEST, "stream": True, "stream_options": {"include_usage": True}}
CHAT_BODY = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "In France."},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
}
LONG_QUESTION = (
    "Tell me a long story about a lighthouse keeper who counts every wave that reaches the "
    "rocks at night and writes each one down in a notebook"
)

Handler = Callable[[httpx.Request], httpx.Response]


def sse(*chunks: dict[str, Any] | str) -> bytes:
    return b"".join(
        b"data: " + (c.encode() if isinstance(c, str) else orjson.dumps(c)) + b"\n\n"
        for c in chunks
    )


def content(text: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": text}}]}


def body_response(status: int, body: bytes) -> httpx.Response:
    # An iterator keeps the body unread, as from a real socket (iter_raw works on it).
    return httpx.Response(status, content=iter([body]))


def call(handler: Handler, body: dict[str, Any] = REQUEST, **options: Any) -> AnswerFields:
    options.setdefault("api_key", None)
    options.setdefault("timeout_s", 5.0)
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        return call_upstream(client, URL, body, **options)


def test_json_answer_gives_text_tokens_and_latency() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        time.sleep(0.02)
        return body_response(200, orjson.dumps(CHAT_BODY))

    answer = call(handler)

    assert answer.error is None
    assert answer.error_kind is None
    assert answer.status_code == 200
    assert answer.text == "In France."
    assert answer.finish_reason == "stop"
    assert (answer.prompt_tokens, answer.completion_tokens) == (11, 3)
    assert answer.latency_ms is not None
    assert answer.latency_ms >= 20
    assert answer.ttft_ms == answer.latency_ms


def test_non_streamed_answer_has_no_time_per_output_token() -> None:
    # Without a stream nothing tells when the tokens after the first were produced.
    answer = call(lambda request: body_response(200, orjson.dumps(CHAT_BODY)))

    assert answer.completion_tokens == 3
    assert answer.tpot_ms is None


def test_request_carries_the_body_and_the_api_key_as_bearer() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return body_response(200, orjson.dumps(CHAT_BODY))

    call(handler, api_key="sk-candidate")

    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == URL
    assert request.headers["authorization"] == "Bearer sk-candidate"
    assert request.headers["content-type"] == "application/json"
    assert orjson.loads(request.content) == REQUEST


def test_no_authorization_header_without_an_api_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return body_response(200, orjson.dumps(CHAT_BODY))

    call(handler, api_key=None)

    assert "authorization" not in seen[0].headers


def test_http_error_status_is_an_error_with_its_status_and_body() -> None:
    error = {"error": {"message": "The server had an error", "type": "server_error"}}

    answer = call(lambda request: body_response(500, orjson.dumps(error)))

    assert answer.error_kind == "http_status"
    assert answer.status_code == 500
    assert answer.error is not None
    assert "500" in answer.error
    assert "The server had an error" in answer.error
    assert answer.text is None
    assert answer.latency_ms is not None
    assert answer.latency_ms >= 0


def test_refused_connection_is_a_connection_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    answer = call(handler)

    assert answer.error_kind == "connection"
    assert answer.error is not None
    assert "Connection refused" in answer.error
    assert answer.status_code is None
    assert answer.latency_ms is not None
    assert answer.latency_ms < 5000


def test_timeout_is_an_error_whose_latency_is_the_timeout() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    answer = call(handler, timeout_s=2.5)

    assert answer.error_kind == "timeout"
    assert answer.latency_ms == 2500
    assert answer.status_code is None


def test_non_json_answer_is_an_invalid_response() -> None:
    answer = call(lambda request: body_response(200, b"<html>502 Bad Gateway</html>"))

    assert answer.error_kind == "invalid_response"
    assert answer.status_code == 200
    assert answer.error is not None
    assert answer.latency_ms is not None
    assert answer.latency_ms >= 0


def test_json_answer_of_the_wrong_shape_is_an_invalid_response() -> None:
    answer = call(lambda request: body_response(200, b'{"choices": [null]}'))

    assert answer.error_kind == "invalid_response"


def test_stream_cut_before_done_is_an_invalid_response() -> None:
    cut = sse(content("In"), content(" Fra"))

    answer = call(lambda request: body_response(200, cut), STREAM_REQUEST)

    assert answer.error_kind == "invalid_response"
    assert answer.error is not None
    assert "[DONE]" in answer.error


def test_streamed_answer_records_time_to_first_token_and_per_output_token() -> None:
    def chunks() -> Iterator[bytes]:
        yield sse({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
        time.sleep(0.05)
        yield sse(content("In"))
        for piece in (" Fr", "an", "ce."):
            time.sleep(0.03)
            yield sse(content(piece))
        usage = {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}
        yield sse({"choices": [], "usage": usage}, "[DONE]")

    answer = call(lambda request: httpx.Response(200, content=chunks()), STREAM_REQUEST)

    assert answer.error is None
    assert answer.text == "In France."
    assert answer.completion_tokens == 5
    assert answer.ttft_ms is not None
    assert answer.tpot_ms is not None
    assert answer.latency_ms is not None
    assert 50 <= answer.ttft_ms < answer.latency_ms
    assert answer.latency_ms - answer.ttft_ms >= 90
    assert answer.tpot_ms == pytest.approx((answer.latency_ms - answer.ttft_ms) / 4)
    assert answer.tpot_ms == tpot_ms(answer.latency_ms, answer.ttft_ms, 5)


def test_stream_without_usage_counts_content_chunks_as_tokens() -> None:
    raw = sse(content("In"), content(" France"), content("."), "[DONE]")

    answer = call(lambda request: body_response(200, raw), STREAM_REQUEST)

    assert answer.text == "In France."
    assert answer.completion_tokens == 3
    assert answer.tpot_ms is not None


@pytest.mark.parametrize(
    "behaviour",
    [{"tokens_per_s": 5}, {"hang_rate": 1}],
    ids=["slow-stream", "no-answer"],
)
def test_a_slow_real_server_is_cut_at_the_timeout(behaviour: dict[str, float]) -> None:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": LONG_QUESTION}]}
    body["stream"] = "tokens_per_s" in behaviour
    with (
        serve_in_thread(SimulatorConfig(latency_ms=0, **behaviour)) as base_url,
        httpx.Client() as client,
    ):
        started = time.perf_counter()
        answer = call_upstream(
            client, f"{base_url}/chat/completions", body, api_key=None, timeout_s=0.5
        )
        elapsed = time.perf_counter() - started

    assert answer.error_kind == "timeout"
    assert answer.latency_ms == 500
    assert elapsed < 2.0


def test_the_timeout_bounds_the_whole_call_when_tokens_arrive_just_under_it() -> None:
    # One token every 0.9 s: no single read waits 1 s, yet the answer takes far longer.
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": LONG_QUESTION}],
        "stream": True,
    }
    with (
        serve_in_thread(SimulatorConfig(tokens_per_s=1 / 0.9)) as base_url,
        httpx.Client() as client,
    ):
        started = time.perf_counter()
        answer = call_upstream(
            client, f"{base_url}/chat/completions", body, api_key=None, timeout_s=1.0
        )
        elapsed = time.perf_counter() - started

    assert answer.error_kind == "timeout"
    assert answer.latency_ms == 1000
    assert elapsed < 1.5
