"""OpenAPI documentation of the proxy endpoints.

The proxy reads a request as bytes plus the few fields it needs (STYLE.md: no schema validation
on the hot path), so these schemas only document the shapes, for clients and for schema-driven
tests: the upstream validates the rest, and its errors pass through unchanged.
"""

from __future__ import annotations

from typing import Any

_ERROR_BODY = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
_ERROR = {"content": {"application/json": {"schema": _ERROR_BODY}}}
_HEADERS = {
    "x-switchover-overhead-ms": {
        "description": "time spent in Switchover itself",
        "schema": {"type": "string"},
    },
    "x-switchover-pair-id": {
        "description": "present when the request was mirrored to the candidate",
        "schema": {"type": "string"},
    },
}
_RESPONSES: dict[str, Any] = {
    "200": {
        "description": "The primary's answer; a server-sent event stream when `stream` is true.",
        "headers": _HEADERS,
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/event-stream": {"schema": {"type": "string"}},
        },
    },
    "400": {"description": "Not a JSON object, or a field of the wrong type.", **_ERROR},
    "404": {"description": "No use case for this request.", **_ERROR},
    "413": {"description": "The body is over the size limit.", **_ERROR},
    "502": {"description": "The primary could not be reached.", **_ERROR},
    "504": {"description": "The primary timed out.", **_ERROR},
    "default": {"description": "The primary's own error, passed through.", **_ERROR},
}
_ROUTING_HEADERS = [
    {
        "name": "x-switchover-use-case",
        "in": "header",
        "required": False,
        "description": "the use case; by default the one whose primary model is asked for",
        "schema": {"type": "string"},
    },
    {
        "name": "x-switchover-feature",
        "in": "header",
        "required": False,
        "description": "a feature tag stored with the pair (for segmented criteria)",
        "schema": {"type": "string"},
    },
]
_COMMON = {
    "model": {"type": "string"},
    "stream": {"type": ["boolean", "null"]},
    "max_tokens": {"type": ["integer", "null"], "minimum": 1},
    "temperature": {"type": ["number", "null"], "minimum": 0, "maximum": 2},
    "top_p": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
    "n": {"type": ["integer", "null"], "minimum": 1},
    "stop": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    "seed": {"type": ["integer", "null"]},
    "user": {"type": "string"},
}
_MESSAGE = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {"type": ["string", "null"]},
        "name": {"type": "string"},
        "tool_call_id": {"type": "string"},
    },
}


def _operation(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {
        "type": "object",
        "required": required,
        "properties": _COMMON | properties,
        "additionalProperties": True,
        "description": "Other OpenAI parameters pass through to the primary unchanged.",
    }
    return {
        "parameters": _ROUTING_HEADERS,
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
        "responses": _RESPONSES,
    }


CHAT_COMPLETIONS = _operation(
    {
        "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
        "max_completion_tokens": {"type": ["integer", "null"], "minimum": 1},
        "stream_options": {"type": ["object", "null"]},
        "tools": {"type": "array", "items": {"type": "object"}},
        "tool_choice": {"anyOf": [{"type": "string"}, {"type": "object"}]},
        "response_format": {"type": "object"},
    },
    ["model", "messages"],
)
COMPLETIONS = _operation(
    {
        "prompt": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "suffix": {"type": ["string", "null"]},
        "echo": {"type": ["boolean", "null"]},
    },
    ["model", "prompt"],
)
