"""`switchover gate`: the command; the HTTP call and rendering are `shadow.cli.gate`."""

from __future__ import annotations

from typing import Annotated

import typer


def gate(
    use_case: Annotated[str, typer.Argument(help="the use case to ask about")],
    url: Annotated[
        str, typer.Option(envvar="SWITCHOVER_URL", help="the Switchover service")
    ] = "http://127.0.0.1:8080",
    token: Annotated[
        str | None, typer.Option(envvar="SWITCHOVER_TOKEN", help="a viewer token")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the API's JSON")] = False,
) -> None:
    """Exit 0 on GO, 1 on NO_GO, 2 on INSUFFICIENT_DATA, 3 when the verdict can't be had."""
    import json

    from rich.console import Console

    from shadow.cli.gate import EXIT_CODES, EXIT_ERROR, GateError, fetch_verdict, render

    try:
        readiness = fetch_verdict(url, use_case, token)
    except GateError as exc:
        typer.echo(f"switchover gate: {exc}", err=True)
        raise typer.Exit(EXIT_ERROR) from None
    if as_json:
        typer.echo(json.dumps(readiness, indent=2))
    else:
        render(Console(), readiness)
    raise typer.Exit(EXIT_CODES.get(readiness["verdict"], EXIT_ERROR))
