"""Where a proxied request enters: the hot endpoints go straight to the proxy."""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from shadow.jobs import ENDPOINT_PATHS
from shadow.proxy.forward import Proxy, openai_error

log = logging.getLogger(__name__)


class ProxyFastPath:
    """Sends the two hot endpoints straight to the proxy, past FastAPI's routing.

    Routing and FastAPI's request handling cost about a third of the proxy's CPU per request;
    the routes stay registered so that the OpenAPI schema still describes them.
    """

    HOT: ClassVar[dict[str, str]] = {"/v1" + path: name for name, path in ENDPOINT_PATHS.items()}

    def __init__(self, app: ASGIApp, state: dict[str, Any]) -> None:
        self._app = app
        self._state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.HOT.get(scope.get("path", "")) if scope["type"] == "http" else None
        proxy: Proxy | None = self._state.get("proxy")
        if endpoint is None or scope["method"] != "POST" or proxy is None:
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            response = await proxy.completions(Request(scope, receive), endpoint, started)
        except Exception:
            log.exception("the proxy failed on a request")
            response = openai_error(
                500, "Switchover failed on this request.", "server_error", "internal_error"
            )
        await response(scope, receive, send)
