"""Alembic environment: the URL comes from the caller (`switchover db upgrade`), else storage's."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from storage.db import database_url, make_engine
from storage.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # A batch migration copies a table and drops the old one; with foreign keys enforced,
        # SQLite's drop deletes the rows that reference it (ON DELETE CASCADE: every score).
        # The pragma does nothing inside a transaction, so it is set before the migration's.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    try:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=sqlite,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()


def run_migrations() -> None:
    """Run against the connection handed over in attributes, or one made from the URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or database_url())
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `switchover db upgrade`")
run_migrations()
