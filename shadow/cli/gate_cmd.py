"""`switchover gate`: the command; the HTTP call and rendering are `shadow.cli.gate`."""

from __future__ import annotations

from typing import Annotated

import typer

from shadow.cli.common import console, pick_use_case


def gate(
    use_case_arg: Annotated[
        str | None,
        typer.Argument(metavar="USE_CASE", help="the use case to ask about", show_default=False),
    ] = None,
    use_case_opt: Annotated[
        str | None,
        typer.Option("--use-case", metavar="USE_CASE", help="the use case, as an option"),
    ] = None,
    url: Annotated[
        str, typer.Option(envvar="SWITCHOVER_URL", metavar="URL", help="the Switchover service")
    ] = "http://127.0.0.1:8080",
    token: Annotated[
        str | None,
        typer.Option(envvar="SWITCHOVER_TOKEN", metavar="TOKEN", help="a viewer token"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the API's JSON")] = False,
    candidate: Annotated[
        str | None, typer.Option(help="which candidate; default the use case's lead one")
    ] = None,
) -> None:
    """Exit 0 on GO, 1 on NO_GO, 2 on INSUFFICIENT_DATA, 3 when the verdict can't be had."""
    import json

    from shadow.cli.gate import (
        EXIT_CODES,
        EXIT_ERROR,
        GateError,
        fetch_verdict,
        fetch_warnings,
        render,
    )

    use_case = pick_use_case(use_case_arg, use_case_opt, code=EXIT_ERROR)
    try:
        readiness = fetch_verdict(url, use_case, token, candidate=candidate)
    except GateError as exc:
        typer.echo(f"switchover gate: {exc}", err=True)
        raise typer.Exit(EXIT_ERROR) from None
    if as_json:
        typer.echo(json.dumps(readiness, indent=2))
    else:
        render(console(), readiness, fetch_warnings(url, use_case))
    raise typer.Exit(EXIT_CODES.get(readiness["verdict"], EXIT_ERROR))
