"""The FastAPI application: proxy routes, the readiness API, health and metrics."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy.exc import SQLAlchemyError

from criteria.api import render_error
from criteria.cost import routes as cost_routes
from criteria.errors import ReadinessError
from criteria.imports.routes import create_router as imports_router
from criteria.readiness import routes as readiness_routes
from criteria.readiness.service import sync_all_config_criteria
from criteria.rollout import routes as rollout_routes
from criteria.usecases import Catalog
from shadow.catalog import catalog_for
from shadow.config import SwitchoverConfig
from shadow.health import Readiness, broker_check, database_answers
from shadow.localqueue import LocalQueue
from shadow.proxy.entry import ProxyApp
from shadow.proxy.forward import Proxy, openai_error
from shadow.proxy.live import LiveSync, LiveTraffic
from shadow.proxy.mirror import Mirror, Publish
from shadow.proxy.openapi import CHAT_COMPLETIONS, COMPLETIONS
from shadow.proxy.prepare import JobPreparer
from shadow.proxy.publisher import CeleryPublisher
from shadow.proxy.relay import LoopRelay, RelayClient
from shadow.proxy.turns import MemoryTurns, RedisTurns, TurnStore
from shadow.settings import Settings
from shadow.startup import StartupWarning, probe_candidates, static_warnings
from shadow.supervisor import ALL_PARTS, API, PROXY
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


def _metrics_text() -> bytes:
    """This process's metrics, or every process's under `switchover serve` (multiprocess)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()


def create_app(
    settings: Settings,
    config: SwitchoverConfig,
    publish: Publish | None = None,
    *,
    parts: frozenset[str] = ALL_PARTS,
    embedded_worker: bool = True,
    relay: str | None = None,
) -> FastAPI:
    """The service; `publish` defaults to Celery, tests may hand in their own.

    `relay`: the address of the relay process (`switchover serve`): the jobs are written to it
    and it publishes them (shadow/proxy/relay.py), instead of this process publishing them.

    `parts`: the proxy, the readiness API or both. `embedded_worker`: in embedded mode, also
    run the worker and the periodic work in a thread of this process (`switchover serve`
    passes False and runs them in worker processes of their own).
    """
    configure_database(settings.database_url.get_secret_value())
    state: dict[str, Any] = {}
    catalog = catalog_for(config, settings.config_dir(), settings.evaluate_every_s)
    dependencies = {"database": database_answers}
    broker = broker_check(settings)
    if broker is not None:
        dependencies["broker"] = broker
    readiness = Readiness(dependencies, timeout_s=settings.broker_publish_timeout_s + 1)
    warnings: list[StartupWarning] = []

    async def probe(sessions: dict[str, aiohttp.ClientSession]) -> None:
        # in the background: a candidate that does not answer never holds the start-up up
        for warning in await probe_candidates(config, catalog, sessions):
            log.warning("%s", warning.message)
            warnings.append(warning)

    local_queue = LocalQueue(settings.local_queue_path) if settings.embedded else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if PROXY not in parts:
            _store_config_criteria(catalog)
            yield
            return
        sessions = {
            name: aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=10, sock_read=upstream.timeout_s
                ),
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
                # one session serves every client: a cookie an upstream sets for one request
                # is that client's (relayed to it), never sent with another client's request
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            for name, upstream in config.upstreams.items()
        }
        if settings.embedded and embedded_worker:
            from shadow.broker import create_celery
            from shadow.worker.embedded import start_embedded_worker
            from shadow.worker.measure import build_runtime, configure_evaluators, use_runtime
            from shadow.worker.periodic import Periodic, PeriodicEvaluation
            from shadow.worker.retention import purge_expired
            from shadow.worker.tasks import sweep_unscored
            from storage.migrate import upgrade

            upgrade()
            use_runtime(build_runtime(settings, config))
            configure_evaluators(config)
            celery_app = create_celery(settings)
            state["worker"] = start_embedded_worker(celery_app, settings)
            state["evaluation"] = PeriodicEvaluation(catalog, settings.evaluate_every_s)
            state["retention"] = Periodic(
                lambda: purge_expired(config), settings.purge_every_s, "switchover-retention"
            )
            state["sweep"] = Periodic(
                lambda: sweep_unscored(celery_app), settings.sweep_every_s, "switchover-sweep"
            )
        _store_config_criteria(catalog)
        for warning in static_warnings(config, catalog):
            log.warning("%s", warning.message)
            warnings.append(warning)
        state["probe"] = asyncio.get_running_loop().create_task(probe(sessions))
        redis_url = settings.limiter_redis_url
        turns: TurnStore = (
            RedisTurns(redis_url, settings.turn_ttl_s)
            if redis_url
            else MemoryTurns(settings.turn_ttl_s)
        )
        publisher: Publish = publish or (
            RelayClient(relay, settings.broker_publish_timeout_s)
            if relay is not None
            else CeleryPublisher(settings)
        )
        journal = local_queue.record_dropped if local_queue and publish is None else None
        loop_relay = None
        if relay is not None and publish is None:
            loop_relay = LoopRelay(relay)
            await loop_relay.connect()
        mirror = Mirror(
            publisher,
            settings.shadow_buffer_size,
            prepare=JobPreparer(config, turns),
            journal=journal,
            direct=loop_relay,
        )
        state["mirror"] = mirror
        live = None
        if any(u.mode != "shadow" or u.rollout is not None for u in config.use_cases.values()):
            # Only use cases with a rollout need the database's live percentages.
            live = LiveTraffic.from_config(config)
            state["live_sync"] = LiveSync(live, catalog, settings.rollout_sync_s)
            await state["live_sync"].sync()
            state["live_sync"].start()
        state["proxy"] = Proxy(
            config,
            sessions,
            mirror,
            settings.max_body_bytes,
            live=live,
            body_timeout_s=settings.body_read_timeout_s,
        )
        # Everything built so far lives as long as the process: keep it out of the garbage
        # collector's full passes, which otherwise stall every request for tens of ms.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            state["probe"].cancel()
            if "live_sync" in state:
                await state["live_sync"].stop()
            if loop_relay is not None:
                await loop_relay.aclose()
            mirror.close()
            if "evaluation" in state:
                state["evaluation"].stop()
            if "retention" in state:
                state["retention"].stop()
            if "sweep" in state:
                state["sweep"].stop()
            if "worker" in state:
                state["worker"].stop()
            await state["proxy"].aclose()
            for session in sessions.values():
                await session.close()

    app = ProxyApp(
        state=state,
        max_header_bytes=settings.max_header_bytes,
        title="Switchover",
        version="0.1.0",
        summary="OpenAI-compatible shadow proxy and migration readiness",
        lifespan=lifespan,
    )
    if API in parts:
        for domain in (readiness_routes, rollout_routes, cost_routes):
            app.include_router(domain.create_router(catalog))
        app.include_router(imports_router())
    app.add_exception_handler(ReadinessError, render_error)
    if PROXY in parts:
        _install_proxy_routes(app, state)
    _install_ops_routes(
        app, state, parts, local_queue if not embedded_worker else None, readiness, warnings
    )
    return app


def _install_proxy_routes(app: FastAPI, state: dict[str, Any]) -> None:
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

    @app.post("/v1/responses", tags=["proxy"])
    async def responses(request: Request) -> Response:
        """OpenAI Responses, answered by the use case's primary."""
        return await proxy().completions(request, "responses")

    @app.post("/v1/messages", tags=["proxy"])
    async def messages(request: Request) -> Response:
        """Anthropic Messages, answered by the use case's primary."""
        return await proxy().completions(request, "messages")

    @app.get("/v1/models", tags=["proxy"])
    async def models(request: Request) -> Response:
        """The primary's model list."""
        return await proxy().models(request)


def _install_ops_routes(
    app: FastAPI,
    state: dict[str, Any],
    parts: frozenset[str],
    workers: LocalQueue | None,
    readiness: Readiness,
    warnings: list[StartupWarning],
) -> None:
    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    async def readyz() -> JSONResponse:
        """Ready: the mirror (and embedded worker) run, the broker and the database answer.

        `warnings` name what keeps evidence from coming in (it does not make the service unready).
        """
        checks: dict[str, bool] = {}
        if PROXY in parts:
            mirror: Mirror | None = state.get("mirror")
            checks["mirror"] = bool(mirror and mirror.alive)
            if "worker" in state:
                checks["embedded_worker"] = state["worker"].is_alive()
            elif workers is not None:
                checks["embedded_worker"] = await asyncio.to_thread(workers.workers_alive) > 0
        checks |= await readiness.results()
        ready = all(checks.values())
        return JSONResponse(
            {
                "status": "ready" if ready else "not ready",
                "checks": checks,
                "warnings": [w.as_json() for w in warnings],
            },
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", tags=["ops"])
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(_metrics_text(), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(404)
    async def not_found(request: Request, exc: Exception) -> Response:
        return openai_error(
            404,
            f"No route {request.method} {request.url.path}.",
            "invalid_request_error",
            "not_found",
        )
