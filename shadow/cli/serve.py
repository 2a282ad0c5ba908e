"""`switchover serve` and `switchover worker`: the proxy and the Celery worker."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from shadow.cli.common import load_config
from shadow.config import ConfigError
from shadow.settings import get_settings


def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on")] = None,
) -> None:
    """Run the proxy (embedded broker and worker unless SWITCHOVER_BROKER_URL is set)."""
    import uvicorn

    from shadow.app import create_app
    from shadow.serving import uvicorn_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = get_settings()
    config = load_config(settings)
    source = settings.config_path() or "the bundled default configuration"
    mode = "embedded" if settings.embedded else "distributed"
    typer.echo(
        f"switchover: {mode} mode, {len(config.use_cases)} use case(s) from {source}", err=True
    )
    try:
        app_ = create_app(settings, config)
    except ConfigError as exc:
        typer.echo(f"switchover: {exc}", err=True)
        raise typer.Exit(2) from None
    server = uvicorn.Server(uvicorn_config(app_, host or settings.host, port or settings.port))
    server.run()


def worker(
    concurrency: Annotated[int | None, typer.Option(help="parallel shadow jobs")] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level")] = "INFO",
    beat: Annotated[
        bool, typer.Option(help="also schedule the periodic verdicts (run in one worker only)")
    ] = False,
    queues: Annotated[
        str, typer.Option(help="jobs to take: `shadow`, `scoring` or both, comma-separated")
    ] = "shadow,scoring",
) -> None:
    """Run a Celery worker for the shadow and scoring jobs (distributed mode)."""
    settings = get_settings()
    config = load_config(settings)
    from criteria.readiness.tasks import configure as configure_readiness
    from shadow.catalog import catalog_for

    try:
        configure_readiness(catalog_for(config, settings.config_dir(), settings.evaluate_every_s))
    except ConfigError as exc:
        typer.echo(f"switchover: {exc}", err=True)
        raise typer.Exit(2) from None
    if settings.embedded:
        typer.echo(
            "switchover: SWITCHOVER_BROKER_URL is not set; `serve` runs its own worker", err=True
        )
        raise typer.Exit(2)
    queue_names = {"shadow": settings.queue, "scoring": settings.scoring_queue_name}
    picked = [name.strip() for name in queues.split(",") if name.strip()]
    if not picked or any(name not in queue_names for name in picked):
        typer.echo(f"switchover: --queues takes shadow and/or scoring, not {queues!r}", err=True)
        raise typer.Exit(2)
    from shadow.broker import create_celery
    from shadow.worker.measure import configure_evaluators

    configure_evaluators(config)
    celery_app = create_celery(settings)
    # The scoring's encoding thread needs the GIL back after each of the model's operations;
    # at Python's default 5 ms switch interval it waits that long whenever the consumer or a
    # batch being stored holds it, with every core idle meanwhile (bench/scoring_throughput.py).
    sys.setswitchinterval(settings.worker_switch_interval_ms / 1000)
    celery_app.Worker(
        pool_cls="threads",
        concurrency=concurrency or settings.worker_concurrency,
        queues=[queue_names[name] for name in picked],
        loglevel=loglevel,
        beat=beat,
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
    ).start()
