"""Where a proxied request enters: the hot endpoints go straight to the proxy."""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from shadow.jobs import ENDPOINT_PATHS
from shadow.proxy.forward import Proxy, api_error

log = logging.getLogger(__name__)


class ProxyFastPath:
    """Sends the hot endpoints straight to the proxy, past FastAPI's routing.

    The hot endpoints need none of FastAPI's routing or request handling on every request;
    the routes stay registered so that the OpenAPI schema still describes them. Every other
    path under `/v1` but the model list passes through to a primary unchanged. `ProxyApp`
    puts it in front of FastAPI's own middleware stack.
    """

    HOT: ClassVar[dict[str, str]] = {"/v1" + path: name for name, path in ENDPOINT_PATHS.items()}
    # Paths under /v1 that Switchover answers through its routes (the model list).
    OWN: ClassVar[frozenset[str]] = frozenset({"/v1/models"})

    def __init__(self, app: ASGIApp, state: dict[str, Any], max_header_bytes: int) -> None:
        self._app = app
        self._state = state
        self._max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._headers_too_large(scope):
            path = scope.get("path", "")
            too_large = api_error(
                "messages" if path.startswith("/v1/messages") else "chat.completions",
                431,
                f"Request headers exceed {self._max_header_bytes} bytes.",
                "invalid_request_error",
                "headers_too_large",
            )
            await too_large(scope, receive, send)
            return
        path = scope.get("path", "") if scope["type"] == "http" else ""
        endpoint = self.HOT.get(path)
        proxy: Proxy | None = self._state.get("proxy")
        passthrough = endpoint is None or scope["method"] != "POST"
        if proxy is None or not path.startswith("/v1/") or (passthrough and path in self.OWN):
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            request = Request(scope, receive)
            if passthrough:
                response = await proxy.passthrough(request, started)
            else:
                response = await proxy.completions(request, endpoint or "", started)
        except Exception:
            log.exception("the proxy failed on a request")
            response = api_error(
                endpoint or "chat.completions",
                500,
                "Switchover failed on this request.",
                "server_error",
                "internal_error",
            )
        await response(scope, receive, send)

    def _headers_too_large(self, scope: Scope) -> bool:
        headers = scope["headers"]
        return sum(len(name) + len(value) for name, value in headers) > self._max_header_bytes


class ProxyApp(FastAPI):
    """FastAPI, with the proxy's hot endpoints answered before FastAPI's own handling.

    FastAPI's `__call__` checks its OpenTelemetry hooks and runs the error, exception and
    body-limit middleware on every request; the fast path needs none of them (it catches its
    own errors and limits the body itself) and leaves every other request to FastAPI as before.
    """

    def __init__(self, *, state: dict[str, Any], max_header_bytes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._fast_path = ProxyFastPath(super().__call__, state, max_header_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._fast_path(scope, receive, send)
