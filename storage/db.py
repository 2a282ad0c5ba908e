"""Engine and sessions. SQLite by default, PostgreSQL via `SWITCHOVER_DATABASE_URL`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_DATABASE_URL = "sqlite:///switchover.db"

_configured_url: str | None = None


def configure_database(url: str | None) -> None:
    """Make `url` this process's database (None: back to the environment's).

    A relative SQLite path is taken from the current directory now, so that an engine made
    later (and cached by URL) cannot open a file of the same name somewhere else.
    """
    global _configured_url
    _configured_url = _absolute_sqlite(url) if url is not None else None


def _absolute_sqlite(url: str) -> str:
    parsed = make_url(url)
    path = parsed.database
    if parsed.get_backend_name() != "sqlite" or not path or path == ":memory:":
        return url
    if path.startswith("file:") or Path(path).is_absolute():
        return url
    return parsed.set(database=str(Path(path).resolve())).render_as_string(hide_password=False)


def database_url() -> str:
    """The configured database URL; else `SWITCHOVER_DATABASE_URL`, else SQLite.

    The settings (`shadow.settings`) are the layer above, so the composition roots hand the
    URL down with `configure_database`. The fallback is for the processes that reach storage
    without one: Celery worker processes importing the tasks, alembic's `migrations/env.py`.
    It reads the environment at each call, so a changed environment (a test's) takes effect.
    """
    if _configured_url is not None:
        return _configured_url
    return os.environ.get("SWITCHOVER_DATABASE_URL", DEFAULT_DATABASE_URL)


def normalise_url(url: str) -> str:
    """Pick the psycopg 3 driver for plain `postgresql://` URLs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while a worker writes; the busy timeout makes writers queue
    # instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for `url` with the settings each backend needs.

    Statement parameters are left out of database errors: those are logged, and the
    parameters are request and answer text.
    """
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            hide_parameters=True,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
        hide_parameters=True,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
        connect_args={"connect_timeout": 5},
    )


@lru_cache(maxsize=8)
def _cached_engine(url: str) -> Engine:
    return make_engine(url)


def get_engine(url: str | None = None) -> Engine:
    """The process-wide engine for `url` (default: the configured database)."""
    return _cached_engine(url or database_url())


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A unit of work: commits when the block succeeds, rolls back when it raises."""
    factory = sessionmaker(bind=engine or get_engine(), expire_on_commit=False)
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def get_db_session() -> Iterator[Session]:
    """The session of one API request (a FastAPI dependency): committed when it succeeds."""
    with session_scope() as session:
        yield session
