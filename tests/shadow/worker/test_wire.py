"""Reading OpenAI answers off the wire: JSON bodies and server-sent event streams."""

import itertools
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadow.worker.wire import InvalidAnswer, parse_body, parse_stream

LF = b"\n"
CRLF = b"\r\n"

WEATHER_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


def event(data: dict[str, Any] | str, newline: bytes = LF) -> bytes:
    """One SSE event carrying a JSON chunk (or a raw string such as [DONE])."""
    payload = data.encode() if isinstance(data, str) else orjson.dumps(data)
    return b"data: " + payload + newline + newline


def delta(**fields: Any) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": fields}]}


def finish(reason: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}


def usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def stream(*chunks: dict[str, Any] | str, newline: bytes = LF) -> bytes:
    return b"".join(event(chunk, newline) for chunk in chunks)


def arrivals_of(reads: list[bytes], times: list[float]) -> list[tuple[int, float]]:
    """(bytes received so far, seconds) after each read, as the caller records them."""
    arrivals = []
    received = 0
    for read, at in zip(reads, times, strict=True):
        received += len(read)
        arrivals.append((received, at))
    return arrivals


# Non-streamed bodies


def test_chat_body_gives_content_finish_reason_and_usage() -> None:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Open Settings."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
    }

    answer = parse_body(orjson.dumps(body))

    assert answer.text == "Open Settings."
    assert answer.tool_calls is None
    assert answer.finish_reason == "stop"
    assert (answer.prompt_tokens, answer.completion_tokens) == (12, 4)


def test_chat_body_gives_tool_calls() -> None:
    message = {"role": "assistant", "content": None, "tool_calls": [WEATHER_CALL]}
    body = {"choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]}

    answer = parse_body(orjson.dumps(body).decode())

    assert answer.text is None
    assert answer.tool_calls == [WEATHER_CALL]
    assert answer.finish_reason == "tool_calls"
    assert answer.prompt_tokens is None


def test_legacy_completion_body_gives_text() -> None:
    body = {
        "object": "text_completion",
        "choices": [{"index": 0, "text": "Paris.", "logprobs": None, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }

    answer = parse_body(orjson.dumps(body))

    assert answer.text == "Paris."
    assert answer.finish_reason == "length"
    assert answer.completion_tokens == 2


def test_body_that_is_not_json_is_an_invalid_answer() -> None:
    with pytest.raises(InvalidAnswer, match="not JSON"):
        parse_body(b'{"choices": [{"message": {"content": "cut')


@pytest.mark.parametrize(
    "body",
    [
        b"{}",
        b'{"choices": []}',
        b"[]",
        b'"just text"',
        b'{"error": {"message": "model overloaded", "type": "server_error"}}',
    ],
)
def test_body_without_choices_is_an_invalid_answer(body: bytes) -> None:
    with pytest.raises(InvalidAnswer, match="no choices"):
        parse_body(body)


@pytest.mark.parametrize(
    "body",
    [b'{"choices": [null]}', b'{"choices": ["text"]}', b'{"choices": {"0": {}}}'],
)
def test_body_with_malformed_choices_is_an_invalid_answer(body: bytes) -> None:
    # A broken upstream must count as an error, not crash the worker that measures it.
    with pytest.raises(InvalidAnswer):
        parse_body(body)


# Streams


def test_stream_assembles_content_finish_reason_and_usage_chunk() -> None:
    raw = stream(
        delta(role="assistant", content=""),
        delta(content="Open"),
        delta(content=" Settings"),
        delta(content="."),
        finish("stop"),
        usage(12, 3),
        "[DONE]",
    )

    answer = parse_stream(raw)

    assert answer.text == "Open Settings."
    assert answer.tool_calls is None
    assert answer.finish_reason == "stop"
    assert (answer.prompt_tokens, answer.completion_tokens) == (12, 3)
    assert answer.content_chunks == 3
    assert answer.first_token_s is None


def test_stream_assembles_a_tool_call_split_over_chunks() -> None:
    raw = stream(
        delta(role="assistant", content=None),
        delta(
            tool_calls=[
                {
                    "index": 0,
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        ),
        delta(tool_calls=[{"index": 0, "function": {"arguments": '{"city"'}}]),
        delta(tool_calls=[{"index": 0, "function": {"arguments": ': "Par'}}]),
        delta(tool_calls=[{"index": 0, "function": {"arguments": 'is"}'}}]),
        finish("tool_calls"),
        usage(20, 9),
        "[DONE]",
    )

    answer = parse_stream(raw)

    assert answer.tool_calls == [WEATHER_CALL]
    assert answer.text is None
    assert answer.finish_reason == "tool_calls"
    assert answer.completion_tokens == 9


def test_stream_keeps_parallel_tool_calls_apart_and_in_index_order() -> None:
    def call(index: int, **fields: Any) -> dict[str, Any]:
        return delta(tool_calls=[{"index": index, **fields}])

    raw = stream(
        call(0, id="call_a", function={"name": "get_weather", "arguments": ""}),
        call(1, id="call_b", function={"name": "get_time", "arguments": ""}),
        call(1, function={"arguments": '{"tz": "CET"}'}),
        call(0, function={"arguments": '{"city": "Paris"}'}),
        finish("tool_calls"),
        "[DONE]",
    )

    answer = parse_stream(raw)

    assert answer.tool_calls == [
        {"id": "call_a", "type": "function", "function": WEATHER_CALL["function"]},
        {
            "id": "call_b",
            "type": "function",
            "function": {"name": "get_time", "arguments": '{"tz": "CET"}'},
        },
    ]


def test_legacy_completion_stream_assembles_text() -> None:
    raw = stream(
        {"object": "text_completion", "choices": [{"index": 0, "text": "Par"}]},
        {"object": "text_completion", "choices": [{"index": 0, "text": "is."}]},
        {"choices": [{"index": 0, "text": "", "finish_reason": "stop"}]},
        "[DONE]",
    )

    answer = parse_stream(raw)

    assert answer.text == "Paris."
    assert answer.finish_reason == "stop"


def test_stream_with_crlf_line_endings_parses_like_lf() -> None:
    chunks = (delta(role="assistant"), delta(content="Hel"), delta(content="lo"), finish("stop"))

    lf = parse_stream(stream(*chunks, "[DONE]"))
    crlf = parse_stream(stream(*chunks, "[DONE]", newline=CRLF))

    assert crlf.text == lf.text == "Hello"
    assert crlf.finish_reason == "stop"


def test_first_token_time_is_the_arrival_of_the_first_content_not_the_role_chunk() -> None:
    reads = [
        event(delta(role="assistant", content="")),
        event(delta(content="Hi")),
        event(delta(content=" there")) + event("[DONE]"),
    ]

    answer = parse_stream(b"".join(reads), arrivals_of(reads, [0.05, 0.40, 0.55]))

    assert answer.text == "Hi there"
    assert answer.first_token_s == 0.40


def test_first_token_time_of_a_tool_call_stream_is_the_first_tool_delta() -> None:
    first_call = {"index": 0, "id": "call_1", "function": {"name": "f", "arguments": ""}}
    reads = [
        event(delta(role="assistant", content=None)),
        event(delta(tool_calls=[first_call])),
        event(delta(tool_calls=[{"index": 0, "function": {"arguments": "{}"}}])) + event("[DONE]"),
    ]

    answer = parse_stream(b"".join(reads), arrivals_of(reads, [0.1, 0.2, 0.3]))

    assert answer.first_token_s == 0.2


@pytest.mark.parametrize("newline", [LF, CRLF], ids=["lf", "crlf"])
def test_first_token_time_waits_for_the_read_that_completes_the_content_chunk(
    newline: bytes,
) -> None:
    role = event(delta(role="assistant"), newline)
    content = event(delta(content="Hi"), newline)
    # The network splits the first content chunk: its last JSON byte comes in a later read.
    cut = content.index(newline + newline) - 1
    reads = [role, content[:cut], content[cut:] + event("[DONE]", newline)]

    answer = parse_stream(b"".join(reads), arrivals_of(reads, [0.1, 0.2, 0.3]))

    assert answer.text == "Hi"
    assert answer.first_token_s == 0.3


def test_stream_without_done_is_an_invalid_answer() -> None:
    raw = stream(delta(role="assistant"), delta(content="Hel"), delta(content="lo"))

    with pytest.raises(InvalidAnswer, match=r"\[DONE\]"):
        parse_stream(raw)


def test_stream_cut_in_the_middle_of_an_event_is_an_invalid_answer() -> None:
    raw = stream(delta(content="Hello")) + b'data: {"choices": [{"delta": {"con'

    with pytest.raises(InvalidAnswer):
        parse_stream(raw)


def test_malformed_chunk_is_an_invalid_answer() -> None:
    raw = stream(delta(content="Hel")) + b'data: {"choices": [{"delta": {"conte\n\n'
    raw += event("[DONE]")

    with pytest.raises(InvalidAnswer, match="not JSON"):
        parse_stream(raw)


def test_error_event_in_a_stream_is_an_invalid_answer_with_its_message() -> None:
    raw = stream(
        delta(content="Hel"),
        {"error": {"message": "CUDA out of memory", "type": "server_error", "code": 500}},
        "[DONE]",
    )

    with pytest.raises(InvalidAnswer, match="CUDA out of memory"):
        parse_stream(raw)


@pytest.mark.parametrize(
    "chunk",
    [{"choices": [None]}, {"choices": ["Hel"]}, {"choices": [{"delta": "Hel"}]}],
)
def test_stream_with_malformed_choices_is_an_invalid_answer(chunk: dict[str, Any]) -> None:
    raw = stream(delta(role="assistant"), chunk, "[DONE]")

    with pytest.raises(InvalidAnswer):
        parse_stream(raw)


@st.composite
def chunked_streams(draw: st.DrawFn) -> tuple[list[str], list[bytes]]:
    """Text pieces, and the stream that carries them cut into reads at arbitrary offsets."""
    pieces = draw(st.lists(st.text(min_size=1, max_size=8), max_size=12))
    raw = stream(
        delta(role="assistant", content=""),
        *(delta(content=piece) for piece in pieces),
        finish("stop"),
        "[DONE]",
    )
    cuts = sorted(draw(st.sets(st.integers(1, len(raw) - 1), max_size=20)))
    bounds = [0, *cuts, len(raw)]
    return pieces, [raw[start:end] for start, end in itertools.pairwise(bounds)]


@given(chunked_streams())
def test_any_chunked_stream_parses_back_to_the_joined_text(
    case: tuple[list[str], list[bytes]],
) -> None:
    pieces, reads = case
    raw = b"".join(reads)
    times = [float(i) for i in range(len(reads))]

    answer = parse_stream(raw, arrivals_of(reads, times))

    assert answer.text == "".join(pieces)
    assert answer.content_chunks == len(pieces)
    assert answer.finish_reason == "stop"
    if pieces:
        # The first token is timed by a read between its last JSON byte and its event's end.
        first = event(delta(content=pieces[0]))
        first_end = raw.index(first) + len(first)
        received = [end for end, _ in arrivals_of(reads, times)]
        earliest = next(i for i, end in enumerate(received) if end >= first_end - 2)
        latest = next(i for i, end in enumerate(received) if end >= first_end)
        assert answer.first_token_s is not None
        assert earliest <= answer.first_token_s <= latest
    else:
        assert answer.first_token_s is None
