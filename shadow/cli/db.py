"""`switchover db`: the database schema and the retention purge."""

from __future__ import annotations

from typing import Annotated

import typer

from shadow.cli.common import group, load_config, use_database
from shadow.settings import get_settings

app = group("Database schema (SWITCHOVER_DATABASE_URL, default SQLite).")


def _shown(revision: str | None) -> str:
    return revision or "no schema"


@app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(metavar="REVISION", help="where to go")] = "head",
) -> None:
    """Apply the migrations and say what was done (from which revision to which, where)."""
    from storage import migrate

    url = use_database(get_settings(), need_schema=False)
    before = migrate.revision(url)
    migrate.upgrade(url, revision=revision)
    after = migrate.revision(url)
    where = migrate.masked(url)
    if before == after:
        typer.echo(f"{where}: already at revision {_shown(after)}, nothing to do")
    else:
        typer.echo(f"{where}: upgraded from {_shown(before)} to revision {after}")


@app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(metavar="REVISION", help="`base` removes everything")],
) -> None:
    """Revert the migrations down to REVISION and say what was done."""
    from storage import migrate

    url = use_database(get_settings())
    before = migrate.revision(url)
    migrate.downgrade(url, revision=revision)
    after = migrate.revision(url)
    typer.echo(f"{migrate.masked(url)}: downgraded from revision {before} to {_shown(after)}")


@app.command("purge")
def db_purge(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="count what would go, delete nothing")
    ] = False,
) -> None:
    """Delete pairs older than their use case's `privacy.retention_days`, with their scores."""
    from shadow.worker.retention import purge_expired

    current = get_settings()
    config = load_config(current)
    use_database(current)
    report = purge_expired(config, dry_run=dry_run)
    if not report:
        typer.echo("no use case with stored pairs has a retention period (privacy.retention_days)")
    verb = "would purge" if dry_run else "purged"
    for purged in report:
        typer.echo(
            f"{purged.use_case}: {verb} {purged.pairs} pairs, {purged.scores} scores, "
            f"{purged.noise_reasks} noise re-asks received before "
            f"{purged.before.isoformat(timespec='seconds')}"
        )
