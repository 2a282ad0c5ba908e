"""The state a Responses request leaves behind: the items a later turn builds on."""

from __future__ import annotations

from typing import Any

import orjson

from shadow.apis.sse import iter_events

# The output item types a later turn's history carries (reasoning stays with the API model).
_HISTORY_TYPES = frozenset({"message", "function_call"})


def input_items(request: dict[str, Any]) -> list[Any]:
    """A request's `input` as a list of items (a bare string is one user message)."""
    given = request.get("input")
    if isinstance(given, str):
        return [{"type": "message", "role": "user", "content": given}]
    return list(given) if isinstance(given, list) else []


def completed_response(raw: bytes, stream: bool) -> dict[str, Any] | None:
    """The response object of an answer: the body, or a stream's `response.completed`."""
    if not stream:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        return data if isinstance(data, dict) else None
    for _, data in reversed(iter_events(raw)):
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if isinstance(event, dict) and event.get("type") == "response.completed":
            response = event.get("response")
            return response if isinstance(response, dict) else None
    return None


def output_items(response: dict[str, Any]) -> list[Any]:
    """A response's output as input items of the next turn."""
    items = []
    for item in response.get("output") or []:
        if not isinstance(item, dict) or item.get("type") not in _HISTORY_TYPES:
            continue
        if item["type"] == "message":
            items.append(
                {"type": "message", "role": "assistant", "content": item.get("content") or []}
            )
        else:
            keep = ("type", "call_id", "name", "arguments")
            items.append({k: item[k] for k in keep if k in item})
    return items


def self_contained(request: dict[str, Any], history: list[Any]) -> dict[str, Any]:
    """The request with the earlier turns written into its input instead of referenced."""
    body = {k: v for k, v in request.items() if k not in ("previous_response_id", "conversation")}
    body["input"] = [*history, *input_items(request)]
    return body
