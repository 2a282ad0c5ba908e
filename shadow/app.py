"""The FastAPI application: proxy routes, health and metrics."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from criteria.readiness.routes import install as install_readiness_api
from criteria.readiness.service import Catalog, sync_all_config_criteria
from shadow.catalog import catalog_for
from shadow.config import SwitchoverConfig
from shadow.proxy.entry import ProxyFastPath
from shadow.proxy.forward import Proxy, openai_error
from shadow.proxy.live import LiveSync, LiveTraffic
from shadow.proxy.mirror import Mirror, Publish
from shadow.proxy.openapi import CHAT_COMPLETIONS, COMPLETIONS
from shadow.proxy.publisher import CeleryPublisher
from shadow.settings import Settings
from storage.db import configure_database, session_scope

log = logging.getLogger(__name__)


def _store_config_criteria(catalog: Catalog) -> None:
    """The configured criteria become a stored version at start-up, so reads need not write."""
    try:
        with session_scope() as session:
            sync_all_config_criteria(session, catalog)
    except SQLAlchemyError as exc:
        # another process may have stored the same version first, or the database is not up
        # yet: the periodic evaluation stores them later
        log.warning("could not store the configured criteria at start-up: %s", exc)


def create_app(
    settings: Settings, config: SwitchoverConfig, publish: Publish | None = None
) -> FastAPI:
    """The service; `publish` defaults to Celery, tests may hand in their own."""
    configure_database(settings.database_url.get_secret_value())
    state: dict[str, Any] = {}
    catalog = catalog_for(config, settings.config_dir(), settings.evaluate_every_s)

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
            from shadow.broker import create_celery
            from shadow.worker.embedded import start_embedded_worker
            from shadow.worker.measure import build_runtime, configure_evaluators, use_runtime
            from shadow.worker.periodic import Periodic, PeriodicEvaluation
            from shadow.worker.retention import purge_expired
            from storage.migrate import upgrade

            upgrade()
            use_runtime(build_runtime(settings, config))
            configure_evaluators(config)
            state["worker"] = start_embedded_worker(create_celery(settings), settings)
            state["evaluation"] = PeriodicEvaluation(catalog, settings.evaluate_every_s)
            state["retention"] = Periodic(
                lambda: purge_expired(config), settings.purge_every_s, "switchover-retention"
            )
        _store_config_criteria(catalog)
        mirror = Mirror(publish or CeleryPublisher(settings), settings.shadow_buffer_size)
        state["mirror"] = mirror
        live = None
        if any(u.mode != "shadow" or u.rollout is not None for u in config.use_cases.values()):
            # Only use cases with a rollout need the database's live percentages.
            live = LiveTraffic.from_config(config)
            state["live_sync"] = LiveSync(live, catalog, settings.rollout_sync_s)
            await state["live_sync"].sync()
            state["live_sync"].start()
        state["proxy"] = Proxy(config, sessions, mirror, settings.max_body_bytes, live=live)
        # Everything built so far lives as long as the process: keep it out of the garbage
        # collector's full passes, which otherwise stall every request for tens of ms.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if "live_sync" in state:
                await state["live_sync"].stop()
            mirror.close()
            if "evaluation" in state:
                state["evaluation"].stop()
            if "retention" in state:
                state["retention"].stop()
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
    install_readiness_api(app, catalog)
    app.add_middleware(ProxyFastPath, state=state)

    def proxy() -> Proxy:
        return state["proxy"]  # type: ignore[no-any-return]

    @app.post("/v1/chat/completions", tags=["proxy"], openapi_extra=CHAT_COMPLETIONS)
    async def chat_completions(request: Request) -> Response:
        """OpenAI chat completions, answered by the use case's primary."""
        return await proxy().completions(request, "chat.completions")

    @app.post("/v1/completions", tags=["proxy"], openapi_extra=COMPLETIONS)
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
