"""`switchover demo`: the command; the runner is `shadow.cli.demo`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer


def demo(
    requests: Annotated[
        int | None, typer.Option(help="requests to send [default: 300; 40 with vllm]")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="client threads")] = 8,
    workdir: Annotated[Path, typer.Option(help="where the demo database goes")] = Path(
        ".switchover-demo"
    ),
    candidate: Annotated[
        str, typer.Option(help="sim: a simulated self-hosted model; vllm: a real vLLM server")
    ] = "sim",
    dashboard: Annotated[
        bool | None,
        typer.Option(
            "--dashboard/--no-dashboard",
            help="serve the readiness dashboard until Ctrl-C [default: in a terminal]",
            show_default=False,
        ),
    ] = None,
    dashboard_port: Annotated[
        int, typer.Option(help="the dashboard's port (another one if it is taken)")
    ] = 8501,
) -> None:
    """Run the whole loop on this machine (simulated API model) and print what was captured."""
    from shadow.candidate.launcher import CandidateError
    from shadow.cli.demo import run_demo

    if candidate not in ("sim", "vllm"):
        raise typer.BadParameter("choose sim or vllm", param_hint="--candidate")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        code = run_demo(
            requests=requests if requests is not None else (40 if candidate == "vllm" else 300),
            concurrency=concurrency,
            workdir=workdir,
            candidate="vllm" if candidate == "vllm" else "sim",
            dashboard=sys.stdin.isatty() if dashboard is None else dashboard,
            dashboard_port=dashboard_port,
        )
    except CandidateError as exc:
        typer.echo(f"switchover: {exc}", err=True)
        code = 1
    sys.exit(code)
