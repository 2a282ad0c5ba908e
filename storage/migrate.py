"""Run the Alembic migrations in `migrations/` against a database URL."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import command
from alembic.config import Config

from storage.db import database_url, normalise_url


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


def current(url: str | None = None) -> None:
    """Print the revision the database is at."""
    command.current(alembic_config(url))
