"""Calling an upstream (OpenAI or Anthropic API) from a worker and measuring the answer.

Every outcome becomes an `AnswerFields`: a refused connection, a status error, a cut stream and
a timeout are errors with a latency (a timeout's latency is the timeout itself), so nothing is
dropped from the statistics.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any

import httpx

from shadow.apis.families import OPENAI, Api, auth_headers
from shadow.bodies import dumps_body
from shadow.worker.wire import Answer, InvalidAnswer, read_answer
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
    answer: Answer,
    status_code: int,
    latency_ms: float | None,
    ttft_ms: float | None,
    streamed: bool,
) -> AnswerFields:
    """Measured fields of a parsed answer; TPOT only exists for a timed, streamed one.

    `latency_ms` is None for a recorded answer whose latency was not measured (an import).
    """
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
        tpot_ms=(
            tpot_ms(latency_ms, ttft_ms, completion_tokens)
            if streamed and latency_ms is not None
            else None
        ),
        prompt_tokens=answer.prompt_tokens,
        completion_tokens=completion_tokens,
    )


class _Deadline:
    """Cut a response's connection when the total time runs out.

    httpx applies its read timeout to each read, so an answer that drips one token just inside
    it could run far past `timeout_s`; shutting the socket down ends the read at the deadline.
    """

    def __init__(self, response: httpx.Response, deadline: float) -> None:
        self._response = response
        self._timer = threading.Timer(max(deadline - time.perf_counter(), 0), self._cut)
        self.expired = False

    def _cut(self) -> None:
        self.expired = True
        stream = self._response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: object, tb: object) -> None:
        self._timer.cancel()
        if self.expired and (exc_type is None or issubclass(exc_type, httpx.TransportError)):
            raise httpx.ReadTimeout("the answer did not finish within the total timeout")


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
    api: Api = OPENAI,
    form: str = "chat.completions",
) -> AnswerFields:
    """POST `body` (a `form` request to an `api` upstream) to `url`, within `timeout_s`."""
    stream = body.get("stream") is True
    headers = {"content-type": "application/json", "accept-encoding": "identity"}
    headers.update(auth_headers(api, api_key))
    started = time.perf_counter()
    deadline = started + timeout_s

    def elapsed_ms() -> float:
        return (time.perf_counter() - started) * 1000

    try:
        request = client.build_request(
            "POST", url, content=dumps_body(body), headers=headers, timeout=timeout_s
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
            with _Deadline(response, deadline):
                for chunk in response.iter_raw():
                    received += chunk
                    arrivals.append((len(received), time.perf_counter() - started))
            latency_ms = elapsed_ms()
        finally:
            response.close()
    except httpx.TimeoutException as exc:
        return _error("timeout", f"timed out after {timeout_s:g} s: {exc}", timeout_s * 1000)
    except httpx.TransportError as exc:
        return _error("connection", f"{type(exc).__name__}: {exc}", elapsed_ms())
    try:
        answer, ttft_ms = read_answer(
            bytes(received), stream=stream, latency_ms=latency_ms, arrivals=arrivals, form=form
        )
    except InvalidAnswer as exc:
        return _error("invalid_response", str(exc), latency_ms, response.status_code)
    return answer_fields(answer, response.status_code, latency_ms, ttft_ms, stream)
