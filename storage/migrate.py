"""Run the Alembic migrations in `migrations/` against a database URL."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from storage.db import database_url, make_engine, normalise_url


def _script_location() -> str:
    spec = importlib.util.find_spec("migrations")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the `migrations` package is not installed next to `storage`")
    return str(Path(next(iter(spec.submodule_search_locations))))


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at the bundled migrations and `url`."""
    config = Config()
    config.set_main_option("script_location", _script_location())
    normalised = normalise_url(url or database_url())
    config.set_main_option("sqlalchemy.url", normalised.replace("%", "%%"))
    return config


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Bring the schema up to `revision`."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    """Take the schema back to `revision`."""
    command.downgrade(alembic_config(url), revision)


def masked(url: str | None = None) -> str:
    """The database URL as it may be shown: the password replaced by `***`."""
    return make_url(url or database_url()).render_as_string(hide_password=True)


def head() -> str | None:
    """The newest revision of the bundled migrations."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def revision(url: str | None = None) -> str | None:
    """The revision the database is at; None when it has no schema.

    A SQLite file that does not exist is not created by asking.
    """
    parsed = make_url(normalise_url(url or database_url()))
    path = parsed.database
    if parsed.get_backend_name() == "sqlite" and path and path != ":memory:":
        if not Path(path).exists():
            return None
    engine = make_engine(parsed.render_as_string(hide_password=False))
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
