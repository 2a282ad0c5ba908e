"""What `/readyz` checks beyond the process itself: the broker and the database answer.

Each check runs in a thread with a deadline, so a hung broker or database makes the service
not ready rather than making the probe hang; a result is reused for a second so that a probe
storm does not open a connection per probe.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from sqlalchemy import text

from shadow.settings import Settings
from storage.db import get_engine

log = logging.getLogger(__name__)

_REUSE_S = 1.0


def database_answers() -> None:
    """Run `SELECT 1` on the configured database (raises when it does not answer)."""
    with get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))


def broker_check(settings: Settings) -> Callable[[], None] | None:
    """A check that connects to the configured broker; None in embedded mode (in-process)."""
    if settings.embedded:
        return None
    from shadow.broker import create_celery

    app = create_celery(settings)
    timeout_s = settings.broker_publish_timeout_s

    def broker_answers() -> None:
        with app.connection_for_write() as connection:
            connection.ensure_connection(
                max_retries=1, interval_start=0, timeout=int(timeout_s) or 1
            )

    return broker_answers


class Readiness:
    """The broker and database checks, run off the event loop and reused briefly."""

    def __init__(self, checks: dict[str, Callable[[], None]], timeout_s: float) -> None:
        self._checks = checks
        self._timeout_s = timeout_s
        self._last: tuple[float, dict[str, bool]] | None = None

    async def _one(self, name: str, check: Callable[[], None]) -> bool:
        try:
            await asyncio.wait_for(asyncio.to_thread(check), self._timeout_s)
        except Exception as exc:
            log.info("readiness: %s is not answering: %s", name, type(exc).__name__)
            return False
        return True

    async def results(self) -> dict[str, bool]:
        """Whether each dependency answers now (or within the last second)."""
        now = time.monotonic()
        if self._last is not None and now - self._last[0] < _REUSE_S:
            return self._last[1]
        names = list(self._checks)
        found = await asyncio.gather(*(self._one(n, self._checks[n]) for n in names))
        results = dict(zip(names, found, strict=True))
        self._last = (time.monotonic(), results)
        return results
