"""Work repeated at a fixed interval in a thread: embedded mode's stand-in for Celery beat."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from criteria.readiness.tasks import evaluate_all
from criteria.usecases import Catalog

log = logging.getLogger(__name__)


class Periodic:
    """Calls `work` every `every_s` seconds in a daemon thread until stopped."""

    def __init__(self, work: Callable[[], object], every_s: float, name: str) -> None:
        self._work = work
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                self._work()
            except Exception:
                log.exception("%s failed; trying again in %s s", self._thread.name, self._every_s)

    def stop(self) -> None:
        """Stop after the run under way, if any."""
        self._stop.set()
        self._thread.join(30)


class PeriodicEvaluation(Periodic):
    """Re-evaluates every use case in a background thread (embedded mode's Celery beat)."""

    def __init__(self, catalog: Catalog, every_s: float) -> None:
        super().__init__(lambda: evaluate_all(catalog), every_s, "switchover-evaluation")
