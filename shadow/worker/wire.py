"""Reading OpenAI answers off the wire: whole JSON bodies and server-sent event streams.

Used by the worker, never on the hot path: the proxy keeps the primary's raw bytes and the
arrival time of each chunk, and the answer is assembled here afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson


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


_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE_END = re.compile(rb"\r\n|\n|\r")


def iter_events(raw: bytes) -> list[tuple[int, bytes]]:
    """(offset in `raw` just past the event, data) of each `data:` event of an SSE stream."""
    events = []
    position = 0
    for match in _EVENT_END.finditer(raw):
        block = raw[position : match.start()]
        data = [line[5:].lstrip() for line in _LINE_END.split(block) if line.startswith(b"data:")]
        if data:
            events.append((match.end(), b"\n".join(data)))
        position = match.end()
    return events


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


def read_answer(
    raw: bytes,
    *,
    stream: bool,
    latency_ms: float,
    arrivals: Sequence[tuple[int, float]] | None = None,
) -> tuple[Answer, float | None]:
    """An upstream's answer as received, and its time to first token in ms.

    A streamed answer's first token is when the chunk holding it arrived (None without
    `arrivals` or without a token); a whole body's is the whole answer's `latency_ms`.
    """
    if not stream:
        return parse_body(raw), latency_ms
    answer = parse_stream(raw, arrivals)
    first = answer.first_token_s
    return answer, first * 1000 if first is not None else None
