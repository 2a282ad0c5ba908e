"""The `switchover` command line."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from shadow.config import ConfigError, SwitchoverConfig
from shadow.settings import Settings, get_settings

app = typer.Typer(
    help="Shadow-test a self-hosted model against the API model on real traffic.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _load(settings: Settings) -> SwitchoverConfig:
    try:
        return settings.load_config()
    except ConfigError as exc:
        typer.echo(f"switchover: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
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
    config = _load(settings)
    source = settings.config_path() or "the bundled default configuration"
    mode = "embedded" if settings.embedded else "distributed"
    typer.echo(
        f"switchover: {mode} mode, {len(config.use_cases)} use case(s) from {source}", err=True
    )
    server = uvicorn.Server(
        uvicorn_config(create_app(settings, config), host or settings.host, port or settings.port)
    )
    server.run()


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="parallel shadow jobs")] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level")] = "INFO",
) -> None:
    """Run a Celery worker for the shadow jobs (distributed mode)."""
    settings = get_settings()
    _load(settings)
    if settings.embedded:
        typer.echo(
            "switchover: SWITCHOVER_BROKER_URL is not set; `serve` runs its own worker", err=True
        )
        raise typer.Exit(2)
    from shadow.celery_app import celery_app

    celery_app.Worker(
        pool_cls="threads",
        concurrency=concurrency or settings.worker_concurrency,
        queues=[settings.queue],
        loglevel=loglevel,
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
    ).start()


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply the migrations (SWITCHOVER_DATABASE_URL, default SQLite)."""
    from storage.migrate import upgrade

    upgrade(revision=revision)


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument()]) -> None:
    """Revert the migrations down to REVISION (`base` removes everything)."""
    from storage.migrate import downgrade

    downgrade(revision=revision)


@app.command()
def simulate(
    port: Annotated[int, typer.Option(help="port to listen on")] = 8001,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    latency_ms: Annotated[float, typer.Option(help="mean time to the first token")] = 0.0,
    latency_dist: Annotated[
        str, typer.Option(help="constant, lognormal or exponential")
    ] = "constant",
    latency_sigma: Annotated[float, typer.Option(help="lognormal shape")] = 0.5,
    tokens_per_s: Annotated[float, typer.Option(help="streaming speed; 0 = instant")] = 0.0,
    error_rate: Annotated[float, typer.Option(help="share answered with HTTP 500")] = 0.0,
    hang_rate: Annotated[float, typer.Option(help="share never answered")] = 0.0,
    garbage_rate: Annotated[float, typer.Option(help="share answered with broken bodies")] = 0.0,
    concurrency_limit: Annotated[
        int, typer.Option(help="requests served at once; 0 = no limit")
    ] = 0,
    quality: Annotated[str, typer.Option(help="perfect, good, mediocre or bad")] = "perfect",
    model_name: Annotated[str, typer.Option(help="model listed by /v1/models")] = "sim-model",
    require_api_key: Annotated[str | None, typer.Option(help="reject other keys with 401")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed")] = None,
    prompts: Annotated[Path | None, typer.Option(help="prompt set (JSON Lines)")] = None,
) -> None:
    """Serve a simulated OpenAI-compatible upstream."""
    from shadow.simulator.server import SimulatorConfig, quality_preset, run

    config = SimulatorConfig(
        latency_ms=latency_ms,
        latency_dist=latency_dist,
        latency_sigma=latency_sigma,
        tokens_per_s=tokens_per_s,
        error_rate=error_rate,
        hang_rate=hang_rate,
        garbage_rate=garbage_rate,
        concurrency_limit=concurrency_limit,
        answer_mix=quality_preset(quality),
        require_api_key=require_api_key,
        seed=seed,
        model_name=model_name,
        prompts_path=prompts,
    )
    typer.echo(f"simulated upstream on http://{host}:{port}/v1", err=True)
    run(config, host=host, port=port)


@app.command()
def demo(
    requests: Annotated[int, typer.Option(help="requests to send")] = 300,
    concurrency: Annotated[int, typer.Option(help="client threads")] = 8,
    workdir: Annotated[Path, typer.Option(help="where the demo database goes")] = Path(
        ".switchover-demo"
    ),
) -> None:
    """Run the whole loop against simulated upstreams and print what was captured."""
    from shadow.demo import run_demo

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(run_demo(requests=requests, concurrency=concurrency, workdir=workdir))


if __name__ == "__main__":
    app()
