"""The FastAPI application: proxy routes, health and metrics."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shadow.config import SwitchoverConfig
from shadow.jobs import ShadowJob
from shadow.mirror import Mirror, Publish
from shadow.proxy import Proxy, openai_error
from shadow.settings import Settings

log = logging.getLogger(__name__)

_CHAT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object", "required": ["model"]}}},
    }
}


def celery_publisher(settings: Settings) -> Publish:
    """Publish jobs to the configured broker (the in-process one when embedded)."""
    from shadow.celery_app import create_celery
    from shadow.tasks import MIRROR_PAIR

    app = create_celery(settings)

    def publish(job: ShadowJob) -> None:
        app.send_task(MIRROR_PAIR, args=(job.model_dump(mode="json"),), queue=settings.queue)

    return publish


def create_app(
    settings: Settings, config: SwitchoverConfig, publish: Publish | None = None
) -> FastAPI:
    """The service; `publish` defaults to Celery, tests may hand in their own."""
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sessions = {
            name: aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=10, sock_read=upstream.timeout_s
                ),
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
            )
            for name, upstream in config.upstreams.items()
        }
        if settings.embedded:
            from shadow.celery_app import create_celery, start_embedded_worker
            from shadow.service import build_runtime, use_runtime
            from storage.migrate import upgrade

            upgrade()
            use_runtime(build_runtime(settings, config))
            state["worker"] = start_embedded_worker(create_celery(settings), settings)
        mirror = Mirror(publish or celery_publisher(settings), settings.shadow_buffer_size)
        state["mirror"] = mirror
        state["proxy"] = Proxy(config, sessions, mirror, settings.max_body_bytes)
        try:
            yield
        finally:
            mirror.close()
            if "worker" in state:
                state["worker"].stop()
            for session in sessions.values():
                await session.close()

    app = FastAPI(
        title="Switchover",
        version="0.1.0",
        summary="OpenAI-compatible shadow proxy and migration readiness",
        lifespan=lifespan,
    )

    def proxy() -> Proxy:
        return state["proxy"]  # type: ignore[no-any-return]

    @app.post("/v1/chat/completions", tags=["proxy"], openapi_extra=_CHAT_BODY)
    async def chat_completions(request: Request) -> Response:
        """OpenAI chat completions, answered by the use case's primary."""
        return await proxy().completions(request, "chat.completions")

    @app.post("/v1/completions", tags=["proxy"], openapi_extra=_CHAT_BODY)
    async def completions(request: Request) -> Response:
        """OpenAI text completions, answered by the use case's primary."""
        return await proxy().completions(request, "completions")

    @app.get("/v1/models", tags=["proxy"])
    async def models(request: Request) -> Response:
        """The primary's model list."""
        return await proxy().models(request)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    async def readyz() -> JSONResponse:
        """Ready to proxy: the mirror's publisher (and embedded worker) are running."""
        mirror: Mirror | None = state.get("mirror")
        checks = {"mirror": bool(mirror and mirror.alive)}
        if "worker" in state:
            checks["embedded_worker"] = state["worker"].is_alive()
        ready = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", tags=["ops"])
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(404)
    async def not_found(request: Request, exc: Exception) -> Response:
        return openai_error(
            404,
            f"No route {request.method} {request.url.path}.",
            "invalid_request_error",
            "not_found",
        )

    return app
