"""Calling an OpenAI-compatible upstream from a worker and measuring the answer.

Every outcome becomes an `AnswerFields`: a refused connection, a status error, a cut stream and
a timeout are errors with a latency (a timeout's latency is the timeout itself), so nothing is
dropped from the statistics.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson

from shadow.wire import Answer, InvalidAnswer, parse_body, parse_stream
from storage.schemas import AnswerFields

_ERROR_TEXT_LIMIT = 2000


def tpot_ms(
    latency_ms: float, ttft_ms: float | None, completion_tokens: int | None
) -> float | None:
    """Time per output token after the first, when there is more than one token."""
    if ttft_ms is None or not completion_tokens or completion_tokens < 2:
        return None
    return max(latency_ms - ttft_ms, 0.0) / (completion_tokens - 1)


def answer_fields(
    answer: Answer, status_code: int, latency_ms: float, ttft_ms: float | None
) -> AnswerFields:
    """Measured fields of a successfully parsed answer."""
    completion_tokens = answer.completion_tokens
    if completion_tokens is None and answer.content_chunks:
        completion_tokens = answer.content_chunks
    return AnswerFields(
        status_code=status_code,
        text=answer.text,
        tool_calls=answer.tool_calls,
        finish_reason=answer.finish_reason,
        latency_ms=latency_ms,
        ttft_ms=ttft_ms,
        tpot_ms=tpot_ms(latency_ms, ttft_ms, completion_tokens),
        prompt_tokens=answer.prompt_tokens,
        completion_tokens=completion_tokens,
    )


def _error(
    kind: str, message: str, latency_ms: float, status_code: int | None = None
) -> AnswerFields:
    return AnswerFields(
        status_code=status_code,
        latency_ms=latency_ms,
        error=message[:_ERROR_TEXT_LIMIT],
        error_kind=kind,
    )


def call_upstream(
    client: httpx.Client,
    url: str,
    body: dict[str, Any],
    *,
    api_key: str | None,
    timeout_s: float,
) -> AnswerFields:
    """POST `body` to `url` and measure it, within `timeout_s` in total."""
    stream = body.get("stream") is True
    headers = {"content-type": "application/json", "accept-encoding": "identity"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    started = time.perf_counter()
    deadline = started + timeout_s

    def elapsed_ms() -> float:
        return (time.perf_counter() - started) * 1000

    try:
        request = client.build_request(
            "POST", url, content=orjson.dumps(body), headers=headers, timeout=timeout_s
        )
        response = client.send(request, stream=True)
        try:
            if not 200 <= response.status_code < 300:
                response.read()
                return _error(
                    "http_status",
                    f"HTTP {response.status_code}: {response.text}",
                    elapsed_ms(),
                    response.status_code,
                )
            received = bytearray()
            arrivals: list[tuple[int, float]] = []
            first_byte_s: float | None = None
            for chunk in response.iter_raw():
                now = time.perf_counter()
                if now > deadline:
                    raise httpx.ReadTimeout("candidate exceeded its total timeout")
                if first_byte_s is None:
                    first_byte_s = now - started
                received += chunk
                arrivals.append((len(received), now - started))
            latency_ms = elapsed_ms()
        finally:
            response.close()
    except httpx.TimeoutException as exc:
        return _error("timeout", f"timed out after {timeout_s:g} s: {exc}", timeout_s * 1000)
    except httpx.TransportError as exc:
        return _error("connection", f"{type(exc).__name__}: {exc}", elapsed_ms())
    try:
        if stream:
            answer = parse_stream(bytes(received), arrivals)
            first = answer.first_token_s
            ttft_ms = first * 1000 if first is not None else None
        else:
            answer = parse_body(bytes(received))
            ttft_ms = latency_ms
    except InvalidAnswer as exc:
        return _error("invalid_response", str(exc), latency_ms, response.status_code)
    return answer_fields(answer, response.status_code, latency_ms, ttft_ms)
