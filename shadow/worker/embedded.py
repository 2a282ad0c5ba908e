"""Embedded mode's worker: a thread-pool Celery worker inside the server process."""

from __future__ import annotations

import threading
from typing import Any

from celery import Celery

from shadow.settings import Settings


class EmbeddedWorker:
    """A thread-pool Celery worker running in a thread of the server process."""

    def __init__(self, controller: Any, thread: threading.Thread) -> None:
        self._controller = controller
        self._thread = thread

    def is_alive(self) -> bool:
        """Whether the worker thread still runs."""
        return self._thread.is_alive()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop consuming, let running jobs finish (up to `timeout_s`)."""
        self._controller.stop(in_sighandler=False)
        self._thread.join(timeout_s)


def start_embedded_worker(app: Celery, settings: Settings) -> EmbeddedWorker:
    """Run a thread-pool worker inside this process (embedded mode)."""
    import shadow.worker.tasks  # noqa: F401 - registers the tasks with every app

    # Pool threads run tasks from the default app's registry, and a task's own `self.app`
    # publishes its follow-ups (scoring, retries): that must be this worker's app.
    app.set_default()
    worker = app.WorkController(
        pool_cls="threads",
        concurrency=settings.embedded_worker_concurrency,
        queues=[settings.queue, settings.scoring_queue_name],
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        loglevel="WARNING",
    )
    thread = threading.Thread(target=worker.start, name="switchover-embedded-worker", daemon=True)
    thread.start()
    return EmbeddedWorker(worker, thread)
