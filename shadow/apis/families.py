"""Which API family an endpoint belongs to, the forms an upstream serves, and error shapes.

An endpoint is named as jobs and stored pairs name it (`chat.completions`, `completions`,
`responses`, `messages`); its family decides the error body a client's SDK parses, the header
its request id comes in and how a key is sent.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson

Api = Literal["openai", "anthropic"]

OPENAI: Api = "openai"
ANTHROPIC: Api = "anthropic"
# What an upstream of each API serves unless its `endpoints:` says otherwise.
DEFAULT_FORMS: dict[Api, tuple[str, ...]] = {
    OPENAI: ("chat.completions", "completions", "responses"),
    ANTHROPIC: ("messages",),
}
# The version header the Anthropic API requires; the client's own is forwarded as it came.
ANTHROPIC_VERSION = "2023-06-01"

# OpenAI error types by their Anthropic name, for the proxy's own errors in Messages form.
_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                    429: "rate_limit_error", 529: "overloaded_error"}  # fmt: skip


def family(endpoint: str) -> Api:
    """The API family of an endpoint name."""
    return ANTHROPIC if endpoint == "messages" else OPENAI


def auth_headers(api: Api, key: str | None) -> dict[str, str]:
    """The headers that carry `key` to an upstream of `api` (none without a key)."""
    if api == ANTHROPIC:
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if key:
            headers["x-api-key"] = key
        return headers
    return {"authorization": f"Bearer {key}"} if key else {}


def request_id(headers: Any) -> str | None:
    """An upstream's request id: `x-request-id` (OpenAI) or `request-id` (Anthropic)."""
    value = headers.get("x-request-id") or headers.get("request-id")
    return str(value) if value is not None else None


def error_body(
    api: Api,
    status: int,
    message: str,
    error_type: str,
    code: str | None = None,
    param: str | None = None,
) -> bytes:
    """An error body in the shape the SDKs of `api` parse."""
    if api == ANTHROPIC:
        kind = _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else error_type)
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})
    body = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    return orjson.dumps(body)
