"""The hot path: forward to the primary, answer the client, hand a sample to the mirror.

Nothing here touches the database or a model. The body is treated as bytes plus the few
fields the proxy needs (model, stream flag); one pooled aiohttp session per upstream carries
the calls, and streamed chunks go to the client as they arrive.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import aiohttp
import orjson
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from shadow.config import SwitchoverConfig, Upstream, UseCase
from shadow.jobs import PrimaryCapture, ShadowJob
from shadow.metrics import OVERHEAD, REQUESTS
from shadow.mirror import Mirror

log = logging.getLogger(__name__)

USE_CASE_HEADER = "x-switchover-use-case"
FEATURE_HEADER = "x-switchover-feature"
# Request headers that are about this hop, or that the proxy sets itself.
_DROP_REQUEST = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "upgrade",
        "proxy-authorization",
        "accept-encoding",
        "authorization",
        USE_CASE_HEADER,
        FEATURE_HEADER,
    }
)
_DROP_RESPONSE = frozenset(
    {
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-encoding",
        "date",
        "server",
    }
)


def openai_error(
    status: int, message: str, error_type: str, code: str | None = None, param: str | None = None
) -> Response:
    """An error in the body shape the OpenAI SDKs parse."""
    body = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


@dataclass
class _Route:
    use_case_name: str
    use_case: UseCase
    upstream: Upstream
    session: aiohttp.ClientSession
    url_base: str


@dataclass
class _StreamState:
    chunks: list[bytes] = field(default_factory=list)
    arrivals: list[tuple[int, float]] = field(default_factory=list)
    complete: bool = False
    client_gone: bool = False


@dataclass(frozen=True)
class _Sample:
    """What a mirrored request needs once its answer is complete."""

    pair_id: str
    use_case: str
    endpoint: str
    received_at: float
    body: bytes
    stream: bool
    client_auth: bool
    feature: str | None
    status: int
    request_id: str | None
    first_byte_s: float


class Proxy:
    """Forwards OpenAI requests to the primary of their use case."""

    def __init__(
        self,
        config: SwitchoverConfig,
        sessions: dict[str, aiohttp.ClientSession],
        mirror: Mirror | None,
        max_body_bytes: int,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        self._sessions = sessions
        self._mirror = mirror
        self._max_body_bytes = max_body_bytes
        self._rng = rng or random.Random()
        self._routes = {name: self._route(name) for name in config.use_cases}
        self._by_model: dict[str, str] = {}
        for name, use_case in config.use_cases.items():
            self._by_model.setdefault(use_case.primary.model, name)
        self._default = "default" if "default" in config.use_cases else None

    def _route(self, name: str) -> _Route:
        use_case = self._config.use_cases[name]
        upstream = self._config.upstreams[use_case.primary.upstream]
        return _Route(
            name,
            use_case,
            upstream,
            self._sessions[use_case.primary.upstream],
            upstream.base_url.rstrip("/"),
        )

    def _resolve(self, header: str | None, model: Any) -> _Route | None:
        if header:
            return self._routes.get(header)
        name = self._by_model.get(model) if isinstance(model, str) else None
        name = name or self._default
        return self._routes[name] if name else None

    @staticmethod
    def _forward_headers(request: Request, route: _Route) -> tuple[dict[str, str], bool]:
        """Headers for the upstream, and whether the client's own key was used."""
        headers = {"accept-encoding": "identity"}
        client_auth = None
        for raw_name, raw_value in request.scope["headers"]:
            name = raw_name.decode("latin-1").lower()
            if name == "authorization":
                client_auth = raw_value.decode("latin-1")
            elif name not in _DROP_REQUEST:
                headers[name] = raw_value.decode("latin-1")
        key = route.upstream.api_key()
        if key:
            headers["authorization"] = f"Bearer {key}"
        elif client_auth:
            headers["authorization"] = client_auth
        return headers, key is None and client_auth is not None

    async def _read_body(self, request: Request) -> bytes | Response:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_body_bytes:
            return self._too_large()
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self._max_body_bytes:
                return self._too_large()
        return bytes(body)

    def _too_large(self) -> Response:
        return openai_error(
            413,
            f"Request body exceeds the limit of {self._max_body_bytes} bytes.",
            "invalid_request_error",
            "request_too_large",
        )

    async def models(self, request: Request) -> Response:
        """`GET /v1/models`, answered by the primary upstream of the selected use case."""
        started = time.perf_counter()
        route = self._resolve(request.headers.get(USE_CASE_HEADER), None)
        if route is None:
            models = sorted({uc.primary.model for uc in self._config.use_cases.values()})
            data = [{"id": m, "object": "model", "owned_by": "switchover"} for m in models]
            return Response(
                orjson.dumps({"object": "list", "data": data}), media_type="application/json"
            )
        headers, _ = self._forward_headers(request, route)
        try:
            upstream_started = time.perf_counter()
            async with route.session.get(f"{route.url_base}/models", headers=headers) as response:
                content = await response.read()
            upstream_s = time.perf_counter() - upstream_started
        except (aiohttp.ClientError, TimeoutError) as exc:
            return self._upstream_failed(exc)
        out = self._response_headers(response, started, upstream_s)
        return Response(content, status_code=response.status, headers=out)

    async def completions(
        self, request: Request, endpoint: str, started: float | None = None
    ) -> Response:
        """Forward a chat or text completion and mirror a sample of the answered ones.

        `started` is when the request reached the application (the overhead clock).
        """
        started = started or time.perf_counter()
        received_at = time.time()
        body = await self._read_body(request)
        if isinstance(body, Response):
            return body
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return openai_error(
                400,
                f"Request body is not valid JSON: {exc}",
                "invalid_request_error",
                "invalid_json",
            )
        if not isinstance(payload, dict):
            return openai_error(
                400, "Request body must be a JSON object.", "invalid_request_error", "invalid_json"
            )
        header = request.headers.get(USE_CASE_HEADER)
        route = self._resolve(header, payload.get("model"))
        if route is None:
            wanted = (
                f"use case {header!r}"
                if header
                else f"a use case for model {payload.get('model')!r}"
            )
            return openai_error(
                404,
                f"Switchover has no {wanted} and no `default` use case.",
                "invalid_request_error",
                "use_case_not_found",
                "model",
            )
        headers, client_auth = self._forward_headers(request, route)
        feature = request.headers.get(FEATURE_HEADER)
        stream = payload.get("stream") is True
        pair_id = None
        if self._mirror is not None and self._rng.random() < route.use_case.shadow.sample_rate:
            pair_id = str(uuid.uuid4())
        url = route.url_base + (
            "/chat/completions" if endpoint == "chat.completions" else "/completions"
        )
        upstream_started = time.perf_counter()
        try:
            response = await route.session.post(url, data=body, headers=headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return self._upstream_failed(exc, route.use_case_name, endpoint)
        first_byte_s = time.perf_counter() - started
        sample = None
        if pair_id is not None and 200 <= response.status < 300:
            sample = _Sample(
                pair_id=pair_id,
                use_case=route.use_case_name,
                endpoint=endpoint,
                received_at=received_at,
                body=body,
                stream=stream,
                client_auth=client_auth,
                feature=feature,
                status=response.status,
                request_id=response.headers.get("x-request-id"),
                first_byte_s=first_byte_s,
            )
        REQUESTS.labels(route.use_case_name, endpoint, str(response.status)).inc()
        if not (stream and response.status == 200 and response.content_type == "text/event-stream"):
            try:
                content = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                return self._upstream_failed(exc, route.use_case_name, endpoint)
            finally:
                response.release()
            out = self._response_headers(
                response, started, time.perf_counter() - upstream_started, sample
            )
            background = None
            if sample is not None:
                latency_ms = (time.perf_counter() - started) * 1000
                background = BackgroundTask(self._mirror_answer, sample, content, latency_ms)
            return Response(
                content, status_code=response.status, headers=out, background=background
            )
        out = self._response_headers(
            response, started, time.perf_counter() - upstream_started, sample
        )
        on_complete = partial(self._mirror_stream, sample) if sample is not None else None
        return RelayResponse(response, out, started, on_complete)

    def _response_headers(
        self,
        response: aiohttp.ClientResponse,
        started: float,
        upstream_s: float,
        sample: _Sample | None = None,
    ) -> dict[str, str]:
        out = {k: v for k, v in response.headers.items() if k.lower() not in _DROP_RESPONSE}
        overhead_s = time.perf_counter() - started - upstream_s
        OVERHEAD.observe(overhead_s)
        out["x-switchover-overhead-ms"] = f"{overhead_s * 1000:.3f}"
        if sample is not None:
            out["x-switchover-pair-id"] = sample.pair_id
        return out

    def _upstream_failed(
        self, exc: BaseException, use_case: str | None = None, endpoint: str = "models"
    ) -> Response:
        if isinstance(exc, TimeoutError):
            status, code, message = 504, "upstream_timeout", "The primary upstream timed out."
        else:
            status, code = 502, "upstream_unavailable"
            message = f"The primary upstream could not be reached: {type(exc).__name__}: {exc}"
        if use_case is not None:
            REQUESTS.labels(use_case, endpoint, str(status)).inc()
        return openai_error(status, message, "upstream_error", code)

    async def _mirror_answer(self, sample: _Sample, content: bytes, latency_ms: float) -> None:
        """After a complete non-streamed answer: hand the pair to the mirror (never blocks)."""
        capture = PrimaryCapture(
            status_code=sample.status,
            body=content.decode("utf-8", "replace"),
            latency_ms=latency_ms,
            first_byte_ms=sample.first_byte_s * 1000,
            request_id=sample.request_id,
        )
        self._submit(sample, capture)

    def _mirror_stream(self, sample: _Sample, state: _StreamState) -> None:
        """After a complete stream: the same, with the arrival time of every chunk."""
        capture = PrimaryCapture(
            status_code=sample.status,
            body=b"".join(state.chunks).decode("utf-8", "replace"),
            latency_ms=(state.arrivals[-1][1] if state.arrivals else sample.first_byte_s) * 1000,
            first_byte_ms=sample.first_byte_s * 1000,
            request_id=sample.request_id,
            arrivals=state.arrivals,
        )
        self._submit(sample, capture)

    def _submit(self, sample: _Sample, capture: PrimaryCapture) -> None:
        assert self._mirror is not None
        self._mirror.submit(
            ShadowJob(
                pair_id=sample.pair_id,
                use_case=sample.use_case,
                endpoint=sample.endpoint,
                received_at=sample.received_at,
                request_body=sample.body.decode("utf-8", "replace"),
                stream=sample.stream,
                client_auth=sample.client_auth,
                primary=capture,
                feature=sample.feature,
            )
        )


class RelayResponse(Response):
    """Streams the primary's chunks to the client as they arrive.

    Lighter than Starlette's StreamingResponse (no task group per response): one watcher task
    notices a client that goes away and closes the upstream stream, so the API stops
    generating an answer nobody reads.
    """

    def __init__(
        self,
        upstream: aiohttp.ClientResponse,
        headers: dict[str, str],
        started: float,
        on_complete: Callable[[_StreamState], None] | None,
    ) -> None:
        # Deliberately not Response.__init__: there is no body to render, only chunks to relay.
        self.status_code = upstream.status
        self.background = None
        self.raw_headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
        ]
        self._upstream = upstream
        self._started = started
        self._on_complete = on_complete

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = _StreamState()
        upstream = self._upstream

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            state.client_gone = True
            upstream.close()

        watcher = asyncio.create_task(watch_disconnect())
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            received = 0
            async for chunk in upstream.content.iter_any():
                received += len(chunk)
                state.chunks.append(chunk)
                state.arrivals.append((received, time.perf_counter() - self._started))
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            state.complete = not state.client_gone
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            if not state.client_gone:
                log.warning("primary stream broke off: %s", exc)
        finally:
            watcher.cancel()
            upstream.release()
        if state.complete and self._on_complete is not None:
            self._on_complete(state)
