"""Reading answers off the wire: whole JSON bodies and server-sent event streams.

Chat and text completions, Responses and Anthropic Messages answers all become one `Answer`
(text, chat-shaped tool calls, chat's finish reasons, tokens, first token time), so that every
evaluator applies to every API family.

Used by the worker, never on the hot path: the proxy keeps the primary's raw bytes and the
arrival time of each chunk, and the answer is assembled here afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from shadow.apis.sse import iter_events


class InvalidAnswer(ValueError):
    """The body is not a usable OpenAI answer (bad JSON, cut stream, no choices)."""


@dataclass
class Answer:
    """The parts of an answer the evaluators and the latency metrics need."""

    text: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    first_token_s: float | None = None
    content_chunks: int = 0


def _usage(answer: Answer, usage: Any) -> None:
    if isinstance(usage, dict):
        answer.prompt_tokens = usage.get("prompt_tokens")
        answer.completion_tokens = usage.get("completion_tokens")


def parse_body(body: bytes | str) -> Answer:
    """An answer from a non-streamed chat or text completion body."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidAnswer(f"answer is not JSON: {exc}") from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise InvalidAnswer("answer has no choices")
    choice = choices[0]
    answer = Answer(finish_reason=choice.get("finish_reason"))
    message = choice.get("message")
    if isinstance(message, dict):
        answer.text = message.get("content")
        answer.tool_calls = message.get("tool_calls") or None
    else:
        answer.text = choice.get("text")
    _usage(answer, data.get("usage"))
    return answer


@dataclass
class _ToolCallBuilder:
    id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    def build(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": "".join(self.arguments)},
        }


def parse_stream(raw: bytes, arrivals: Sequence[tuple[int, float]] | None = None) -> Answer:
    """An answer from a streamed body; `arrivals` are (bytes received so far, seconds).

    With arrivals the answer also carries the time the first content token arrived.
    """
    answer = Answer()
    text: list[str] = []
    tools: dict[int, _ToolCallBuilder] = {}
    done = False
    arrival_index = 0
    for end, data in iter_events(raw):
        if data == b"[DONE]":
            done = True
            break
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise InvalidAnswer(f"stream chunk is not JSON: {exc}") from None
        if not isinstance(chunk, dict):
            raise InvalidAnswer("stream chunk is not an object")
        if isinstance(chunk.get("error"), dict):
            raise InvalidAnswer(f"error in stream: {chunk['error'].get('message')}")
        _usage(answer, chunk.get("usage"))
        choices = chunk.get("choices") or []
        if not isinstance(choices, list):
            raise InvalidAnswer("stream chunk choices is not a list")
        for choice in choices:
            if not isinstance(choice, dict):
                raise InvalidAnswer("stream chunk choice is not an object")
            got_token = False
            delta = choice.get("delta")
            if delta is not None and not isinstance(delta, dict):
                raise InvalidAnswer("stream chunk delta is not an object")
            piece = delta.get("content") if isinstance(delta, dict) else choice.get("text")
            if piece:
                text.append(piece)
                got_token = True
            for call in (delta or {}).get("tool_calls") or []:
                builder = tools.setdefault(call.get("index", 0), _ToolCallBuilder())
                builder.id = call.get("id") or builder.id
                function = call.get("function") or {}
                builder.name += function.get("name") or ""
                if function.get("arguments"):
                    builder.arguments.append(function["arguments"])
                got_token = True
            if choice.get("finish_reason"):
                answer.finish_reason = choice["finish_reason"]
            if got_token:
                answer.content_chunks += 1
                if answer.first_token_s is None and arrivals:
                    while arrival_index < len(arrivals) - 1 and arrivals[arrival_index][0] < end:
                        arrival_index += 1
                    answer.first_token_s = arrivals[arrival_index][1]
    if not done:
        raise InvalidAnswer("stream ended without [DONE]")
    answer.text = "".join(text) if text or not tools else None
    answer.tool_calls = [tools[i].build() for i in sorted(tools)] or None
    return answer


# Anthropic's and the Responses API's stop reasons in chat's words, so both sides compare.
_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "max_output_tokens": "length",
    "content_filter": "content_filter",
}


def _stop_reason(reason: Any) -> str | None:
    if not isinstance(reason, str):
        return None
    return _STOP_REASONS.get(reason, reason)


def _tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments if arguments is not None else {}).decode()
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _load_object(data: bytes | str, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidAnswer(f"{what} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidAnswer(f"{what} is not an object")
    return value


class _FirstToken:
    """Finds when the chunk holding a stream offset arrived."""

    def __init__(self, arrivals: Sequence[tuple[int, float]] | None) -> None:
        self._arrivals = arrivals
        self._index = 0

    def at(self, end: int) -> float | None:
        arrivals = self._arrivals
        if not arrivals:
            return None
        while self._index < len(arrivals) - 1 and arrivals[self._index][0] < end:
            self._index += 1
        return arrivals[self._index][1]


def parse_messages_body(body: bytes | str) -> Answer:
    """An answer from a non-streamed Anthropic Messages body."""
    data = _load_object(body, "answer")
    if data.get("type") == "error":
        raise InvalidAnswer(f"error answer: {(data.get('error') or {}).get('message')}")
    content = data.get("content")
    if not isinstance(content, list):
        raise InvalidAnswer("answer has no content")
    text = [b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"]
    calls = [
        _tool_call(b.get("id"), b.get("name"), b.get("input"))
        for b in content
        if isinstance(b, dict) and b.get("type") == "tool_use"
    ]
    answer = Answer(
        text="".join(text) if text or not calls else None,
        tool_calls=calls or None,
        finish_reason=_stop_reason(data.get("stop_reason")),
    )
    usage = data.get("usage")
    if isinstance(usage, dict):
        answer.prompt_tokens = usage.get("input_tokens")
        answer.completion_tokens = usage.get("output_tokens")
    return answer


def parse_messages_stream(
    raw: bytes, arrivals: Sequence[tuple[int, float]] | None = None
) -> Answer:
    """An answer from an Anthropic Messages event stream (ends with `message_stop`)."""
    answer = Answer()
    first = _FirstToken(arrivals)
    blocks: dict[int, dict[str, Any]] = {}
    stopped = False
    for end, data in iter_events(raw):
        event = _load_object(data, "stream event")
        kind = event.get("type")
        if kind == "error":
            raise InvalidAnswer(f"error in stream: {(event.get('error') or {}).get('message')}")
        if kind == "message_start":
            usage = (event.get("message") or {}).get("usage") or {}
            answer.prompt_tokens = usage.get("input_tokens")
            answer.completion_tokens = usage.get("output_tokens") or None
        elif kind == "content_block_start":
            block = dict(event.get("content_block") or {})
            block["parts"] = [block.get("text", "")] if block.get("type") == "text" else []
            blocks[int(event.get("index", len(blocks)))] = block
        elif kind == "content_block_delta":
            delta = event.get("delta") or {}
            block = blocks.setdefault(int(event.get("index", 0)), {"type": "text", "parts": []})
            piece = delta.get("text") if delta.get("type") == "text_delta" else None
            if delta.get("type") == "input_json_delta":
                piece = delta.get("partial_json")
            if piece:
                block["parts"].append(piece)
                answer.content_chunks += 1
                if answer.first_token_s is None:
                    answer.first_token_s = first.at(end)
        elif kind == "message_delta":
            reason = (event.get("delta") or {}).get("stop_reason")
            if reason:
                answer.finish_reason = _stop_reason(reason)
            usage = event.get("usage") or {}
            if usage.get("output_tokens") is not None:
                answer.completion_tokens = usage["output_tokens"]
            if usage.get("input_tokens"):
                answer.prompt_tokens = usage["input_tokens"]
        elif kind == "message_stop":
            stopped = True
            break
    if not stopped:
        raise InvalidAnswer("stream ended without message_stop")
    text = ["".join(b["parts"]) for _, b in sorted(blocks.items()) if b.get("type") == "text"]
    calls = []
    for _, block in sorted(blocks.items()):
        if block.get("type") == "tool_use":
            joined = "".join(block["parts"]) or orjson.dumps(block.get("input") or {}).decode()
            calls.append(_tool_call(block.get("id"), block.get("name"), joined))
    answer.text = "".join(text) if text or not calls else None
    answer.tool_calls = calls or None
    return answer


def _response_answer(data: dict[str, Any]) -> Answer:
    if data.get("status") == "failed" or isinstance(data.get("error"), dict):
        raise InvalidAnswer(f"failed response: {(data.get('error') or {}).get('message')}")
    output = data.get("output")
    if not isinstance(output, list):
        raise InvalidAnswer("answer has no output")
    text: list[str] = []
    calls = []
    for item in output:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            for part in item.get("content") or []:
                if isinstance(part, dict) and part.get("type") == "output_text":
                    text.append(part.get("text", ""))
                elif isinstance(part, dict) and part.get("type") == "refusal":
                    text.append(part.get("refusal", ""))
        elif item.get("type") == "function_call":
            calls.append(_tool_call(item.get("call_id"), item.get("name"), item.get("arguments")))
    if data.get("status") == "incomplete":
        finish = _stop_reason((data.get("incomplete_details") or {}).get("reason")) or "length"
    else:
        finish = "tool_calls" if calls else "stop"
    answer = Answer(
        text="".join(text) if text or not calls else None,
        tool_calls=calls or None,
        finish_reason=finish,
    )
    usage = data.get("usage")
    if isinstance(usage, dict):
        answer.prompt_tokens = usage.get("input_tokens")
        answer.completion_tokens = usage.get("output_tokens")
    return answer


def parse_responses_body(body: bytes | str) -> Answer:
    """An answer from a non-streamed OpenAI Responses body."""
    return _response_answer(_load_object(body, "answer"))


_RESPONSE_DELTAS = frozenset(
    {
        "response.output_text.delta",
        "response.function_call_arguments.delta",
        "response.refusal.delta",
    }
)
_RESPONSE_ENDS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def parse_responses_stream(
    raw: bytes, arrivals: Sequence[tuple[int, float]] | None = None
) -> Answer:
    """An answer from an OpenAI Responses event stream (ends with `response.completed`)."""
    first = _FirstToken(arrivals)
    first_token_s = None
    chunks = 0
    for end, data in iter_events(raw):
        event = _load_object(data, "stream event")
        kind = event.get("type")
        if kind == "error":
            raise InvalidAnswer(f"error in stream: {event.get('message')}")
        if kind in _RESPONSE_DELTAS and event.get("delta"):
            chunks += 1
            if first_token_s is None:
                first_token_s = first.at(end)
        elif kind in _RESPONSE_ENDS:
            answer = _response_answer(event.get("response") or {})
            answer.first_token_s = first_token_s
            answer.content_chunks = chunks
            return answer
    raise InvalidAnswer("stream ended without response.completed")


_BODY_PARSERS = {"messages": parse_messages_body, "responses": parse_responses_body}
_STREAM_PARSERS = {"messages": parse_messages_stream, "responses": parse_responses_stream}


def read_answer(
    raw: bytes,
    *,
    stream: bool,
    latency_ms: float,
    arrivals: Sequence[tuple[int, float]] | None = None,
    form: str = "chat.completions",
) -> tuple[Answer, float | None]:
    """An upstream's answer as received, and its time to first token in ms.

    `form` is the endpoint that answered (`chat.completions`, `completions`, `responses`,
    `messages`). A streamed answer's first token is when the chunk holding it arrived (None
    without `arrivals` or without a token); a whole body's is the whole answer's `latency_ms`.
    """
    if not stream:
        return _BODY_PARSERS.get(form, parse_body)(raw), latency_ms
    answer = _STREAM_PARSERS.get(form, parse_stream)(raw, arrivals)
    first = answer.first_token_s
    return answer, first * 1000 if first is not None else None
