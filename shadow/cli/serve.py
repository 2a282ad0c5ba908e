"""`switchover serve` and `switchover worker`: the supervised service and the Celery worker."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from shadow.cli.common import ConfigFile, default_of, load_config, with_config
from shadow.config import ConfigError
from shadow.settings import get_settings


def serve(
    host: Annotated[
        str | None,
        typer.Option(metavar="HOST", help=f"address to listen on {default_of('host')}"),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(metavar="PORT", help=f"port to listen on {default_of('port')}"),
    ] = None,
    config_file: ConfigFile = None,
    log_level: Annotated[
        str,
        typer.Option(
            metavar="LEVEL", help="debug, info, warning or error (debug adds each job's lines)"
        ),
    ] = "info",
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="log every request")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(min=1, metavar="N", help="proxy processes sharing the port (use the cores)"),
    ] = 1,
    api_only: Annotated[
        bool, typer.Option("--api-only", help="serve the readiness API (/api/v1) only")
    ] = False,
    proxy_only: Annotated[
        bool, typer.Option("--proxy-only", help="serve the proxy (/v1) only, not /api/v1")
    ] = False,
) -> None:
    """Run the proxy and the readiness API (embedded: also the worker processes).

    Without SWITCHOVER_BROKER_URL the shadow jobs go through a durable queue file to worker
    processes this command supervises.
    """
    from shadow.catalog import catalog_for
    from shadow.startup import configure_logging, report_lines
    from shadow.supervisor import ALL_PARTS, API, PROXY, Supervisor

    try:
        configure_logging(log_level)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--log-level") from None
    if api_only and proxy_only:
        typer.echo("switchover: --api-only and --proxy-only exclude each other", err=True)
        raise typer.Exit(2)
    parts = frozenset({API}) if api_only else frozenset({PROXY}) if proxy_only else ALL_PARTS
    settings = with_config(get_settings(), config_file)
    if config_file is not None:
        # the supervised processes read their settings from the environment
        os.environ["SWITCHOVER_CONFIG"] = str(config_file.resolve())
    config = load_config(settings)
    host, port = host or settings.host, port or settings.port
    try:
        catalog_for(config, settings.config_dir(), settings.evaluate_every_s)
    except ConfigError as exc:
        typer.echo(f"switchover: {exc}", err=True)
        raise typer.Exit(2) from None
    if settings.embedded:
        from storage.db import configure_database
        from storage.migrate import upgrade

        configure_database(settings.database_url.get_secret_value())
        upgrade()
    for line in report_lines(settings, config, host, port):
        typer.echo(f"switchover: {line}", err=True)
    supervisor = Supervisor(
        settings, host, port, workers, parts, log_level=log_level, access_log=access_log
    )
    code = supervisor.run()
    if code:
        raise typer.Exit(code)


def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            help=f"parallel shadow jobs {default_of('worker_concurrency')}",
        ),
    ] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level")] = "INFO",
    beat: Annotated[
        bool, typer.Option(help="also schedule the periodic verdicts (run in one worker only)")
    ] = False,
    queues: Annotated[
        str, typer.Option(help="jobs to take: `shadow`, `scoring` or both, comma-separated")
    ] = "shadow,scoring",
    config_file: ConfigFile = None,
) -> None:
    """Run a Celery worker for the shadow and scoring jobs (distributed mode)."""
    settings = with_config(get_settings(), config_file)
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
    from celery.signals import after_setup_logger

    from shadow.broker import create_celery
    from shadow.startup import quiet_per_task_logs
    from shadow.worker.measure import configure_evaluators

    configure_evaluators(config)
    celery_app = create_celery(settings)
    after_setup_logger.connect(lambda **_: quiet_per_task_logs(loglevel), weak=False)
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
