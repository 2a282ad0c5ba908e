"""`switchover simulate`: a simulated OpenAI-compatible upstream."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


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
    cut_rate: Annotated[float, typer.Option(help="share cut off half-way through")] = 0.0,
    concurrency_limit: Annotated[
        int, typer.Option(help="requests served at once; 0 = no limit")
    ] = 0,
    quality: Annotated[str, typer.Option(help="perfect, good, mediocre or bad")] = "perfect",
    model_name: Annotated[str, typer.Option(help="model listed by /v1/models")] = "sim-model",
    require_api_key: Annotated[str | None, typer.Option(help="reject other keys with 401")] = None,
    reject_unknown_fields: Annotated[
        bool, typer.Option(help="400 on fields the OpenAI API does not know, like OpenAI")
    ] = False,
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
        cut_rate=cut_rate,
        concurrency_limit=concurrency_limit,
        answer_mix=quality_preset(quality),
        require_api_key=require_api_key,
        reject_unknown_fields=reject_unknown_fields,
        seed=seed,
        model_name=model_name,
        prompts_path=prompts,
    )
    typer.echo(f"simulated upstream on http://{host}:{port}/v1", err=True)
    run(config, host=host, port=port)
