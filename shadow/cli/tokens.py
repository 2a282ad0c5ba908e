"""`switchover tokens`: bearer tokens of the readiness API."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from shadow.cli.common import console, fail, group, use_database
from shadow.settings import get_settings

app = group("Bearer tokens of the readiness API.")

_ARTICLE = {"viewer": "a", "admin": "an"}


@app.command("create")
def tokens_create(
    role: Annotated[
        str, typer.Option(metavar="ROLE", help="viewer (read) or admin (read and write)")
    ],
    name: Annotated[str, typer.Option(metavar="NAME", help="who or what the token is for")] = "cli",
) -> None:
    """Create a token; it is printed once, on the last line, and only its hash is stored."""
    from criteria.access.auth import create_token
    from storage.db import session_scope

    if role not in _ARTICLE:
        raise fail("--role must be viewer or admin")
    use_database(get_settings())
    with session_scope() as session:
        token = create_token(session, role, name)  # type: ignore[arg-type]
    typer.echo(
        f"created {_ARTICLE[role]} {role} token for {name!r}; it is shown only now:", err=True
    )
    typer.echo(token)


@app.command("list")
def tokens_list(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """The stored tokens: id, name, role and when made (the tokens themselves are not kept)."""
    import json

    from rich.table import Table

    from criteria.access.auth import list_tokens
    from storage.db import session_scope

    use_database(get_settings())
    with session_scope() as session:
        rows: list[dict[str, Any]] = [
            {"id": t.id, "name": t.name, "role": t.role, "created_at": t.created_at.isoformat()}
            for t in list_tokens(session)
        ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no tokens yet: `switchover tokens create --role viewer` makes one")
        return
    table = Table(show_edge=False)
    for column in ("id", "name", "role", "created"):
        table.add_column(column, justify="right" if column == "id" else "left")
    for row in rows:
        table.add_row(str(row["id"]), row["name"], row["role"], row["created_at"][:19])
    console().print(table)


@app.command("revoke")
def tokens_revoke(
    which: Annotated[
        str, typer.Argument(metavar="ID|TOKEN", help="the id `tokens list` shows, or the token")
    ],
) -> None:
    """Remove a token: requests bearing it get 401 from now on."""
    from criteria.access.auth import revoke_token
    from storage.db import session_scope

    use_database(get_settings())
    with session_scope() as session:
        row = revoke_token(session, which)
        if row is None:
            raise fail(f"no token {which!r}: `switchover tokens list` shows the ids", code=1)
        typer.echo(
            f"revoked {_ARTICLE.get(row.role, 'a')} {row.role} token {row.id} ({row.name!r})"
        )
