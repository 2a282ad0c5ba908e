"""`switchover db`: the database schema and the retention purge."""

from __future__ import annotations

from typing import Annotated

import typer

from shadow.cli.common import load_config
from shadow.settings import get_settings

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply the migrations (SWITCHOVER_DATABASE_URL, default SQLite)."""
    from storage.migrate import upgrade

    upgrade(revision=revision)


@app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument()]) -> None:
    """Revert the migrations down to REVISION (`base` removes everything)."""
    from storage.migrate import downgrade

    downgrade(revision=revision)


@app.command("purge")
def db_purge(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="count what would go, delete nothing")
    ] = False,
) -> None:
    """Delete pairs older than their use case's `privacy.retention_days`, with their scores."""
    from shadow.worker.retention import purge_expired

    report = purge_expired(load_config(get_settings()), dry_run=dry_run)
    if not report:
        typer.echo("no use case with stored pairs has a retention period (privacy.retention_days)")
    verb = "would purge" if dry_run else "purged"
    for purged in report:
        typer.echo(
            f"{purged.use_case}: {verb} {purged.pairs} pairs, {purged.scores} scores, "
            f"{purged.noise_reasks} noise re-asks received before "
            f"{purged.before.isoformat(timespec='seconds')}"
        )
