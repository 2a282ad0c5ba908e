"""`switchover tokens`: bearer tokens of the readiness API."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="Bearer tokens of the readiness API.", no_args_is_help=True)


@app.command("create")
def tokens_create(
    role: Annotated[str, typer.Option(help="viewer (read) or admin (read and write)")],
    name: Annotated[str, typer.Option(help="who or what the token is for")] = "cli",
) -> None:
    """Create a token; it is printed once, on the last line, and only its hash is stored."""
    from criteria.access.auth import create_token
    from storage.db import session_scope

    if role not in ("viewer", "admin"):
        typer.echo("switchover: --role must be viewer or admin", err=True)
        raise typer.Exit(2)
    with session_scope() as session:
        token = create_token(session, role, name)  # type: ignore[arg-type]
    typer.echo(f"created a {role} token for {name!r}; it is shown only now:", err=True)
    typer.echo(token)
