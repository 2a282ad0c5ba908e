"""`switchover dashboard`: the command; the Streamlit process is `shadow.cli.dashboard`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer


def dashboard(
    url: Annotated[
        str, typer.Option(envvar="SWITCHOVER_URL", help="the Switchover service")
    ] = "http://127.0.0.1:8080",
    token: Annotated[
        str | None, typer.Option(envvar="SWITCHOVER_TOKEN", help="a viewer token")
    ] = None,
    port: Annotated[int, typer.Option(help="port to serve the dashboard on")] = 8501,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
) -> None:
    """Serve the readiness dashboard (Streamlit), reading the service's API with a viewer token."""
    from shadow.cli.dashboard import run_foreground

    if not token:
        typer.echo(
            "switchover: the dashboard needs a viewer token: --token or SWITCHOVER_TOKEN "
            "(`switchover tokens create --role viewer` makes one)",
            err=True,
        )
        raise typer.Exit(2)
    typer.echo(f"switchover: dashboard on http://{host}:{port}, reading {url}", err=True)
    sys.exit(run_foreground(url, token, port, host))
