"""Messages and Responses answers read into the same Answer as chat ones."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from shadow.worker.wire import InvalidAnswer, read_answer


def _sse(*events: dict[str, Any]) -> bytes:
    return b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events
    )


def test_messages_body_with_tool_use():
    body = orjson.dumps(
        {
            "type": "message",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_order", "input": {"id": "7"}},
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 12, "output_tokens": 9},
        }
    )
    answer, ttft = read_answer(body, stream=False, latency_ms=40.0, form="messages")
    assert answer.text == "Let me look."
    assert answer.tool_calls == [
        {"id": "toolu_1", "type": "function",
         "function": {"name": "get_order", "arguments": '{"id":"7"}'}}
    ]  # fmt: skip
    assert answer.finish_reason == "tool_calls"
    assert (answer.prompt_tokens, answer.completion_tokens) == (12, 9)
    assert ttft == 40.0


def test_messages_stream_first_token_and_usage():
    raw = _sse(
        {"type": "message_start", "message": {"usage": {"input_tokens": 5, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "max_tokens"},
         "usage": {"output_tokens": 2}},
        {"type": "message_stop"},
    )  # fmt: skip
    first_delta_end = raw.index(b"text_delta") + 40
    arrivals = [(first_delta_end - 60, 0.010), (first_delta_end, 0.020), (len(raw), 0.030)]
    answer, ttft = read_answer(raw, stream=True, latency_ms=30, arrivals=arrivals, form="messages")
    assert answer.text == "Hi!"
    assert answer.finish_reason == "length"
    assert (answer.prompt_tokens, answer.completion_tokens) == (5, 2)
    assert ttft == pytest.approx(20.0)
    with pytest.raises(InvalidAnswer):
        read_answer(
            raw[: raw.index(b"message_stop") - 20], stream=True, latency_ms=1, form="messages"
        )


def test_responses_body_and_stream():
    response = {
        "id": "resp_1",
        "status": "completed",
        "output": [{"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"}],
        "usage": {"input_tokens": 3, "output_tokens": 4},
    }
    answer, _ = read_answer(orjson.dumps(response), stream=False, latency_ms=1, form="responses")
    assert answer.tool_calls[0]["function"]["name"] == "f"
    assert answer.finish_reason == "tool_calls"
    text = {**response, "status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"},
            "output": [{"type": "message", "content": [{"type": "output_text", "text": "Hel"}]}]}  # fmt: skip
    raw = _sse(
        {"type": "response.created", "response": {**text, "output": []}},
        {"type": "response.output_text.delta", "delta": "Hel"},
        {"type": "response.incomplete", "response": text},
    )
    answer, ttft = read_answer(
        raw, stream=True, latency_ms=9, arrivals=[(len(raw), 0.005)], form="responses"
    )
    assert answer.text == "Hel"
    assert answer.finish_reason == "length"
    assert answer.completion_tokens == 4
    assert ttft == pytest.approx(5.0)
    with pytest.raises(InvalidAnswer):
        read_answer(raw[:-200], stream=True, latency_ms=1, form="responses")
