"""Publishing shadow jobs to the Celery broker: the last step of the hot path's hand-over."""

from __future__ import annotations

from typing import Any

from shadow.broker import create_celery
from shadow.jobs import MIRROR_PAIR, ShadowJob
from shadow.localqueue import QueueFull
from shadow.settings import Settings


class CeleryPublisher:
    """Publishes shadow jobs to the configured broker (the local queue file when embedded).

    Called from the mirror's one publisher thread; it keeps one producer (and connection)
    instead of taking one from the pool per job, and skips Celery's printable copy of the
    arguments, which together cost more than the publish itself. When the local queue is at
    its bound a job is refused before any of that is done.
    """

    def __init__(self, settings: Settings) -> None:
        self._app = create_celery(settings, bounded=True)
        self._queue = settings.queue
        self._acquire_s = settings.broker_publish_timeout_s
        self._producer: Any = None

    def __call__(self, job: ShadowJob) -> None:
        if self._producer is None:
            # kombu's producer pools are per broker URL for the whole process, not per app:
            # never wait for ever on one that others have taken.
            self._producer = self._app.producer_pool.acquire(block=True, timeout=self._acquire_s)
        # the local queue at its bound: refuse before Celery builds the message
        full = getattr(self._producer.channel, "full", None)
        if full is not None and full(self._queue):
            raise QueueFull(f"the local queue {self._queue!r} is at its bound")
        try:
            self._app.send_task(
                MIRROR_PAIR,
                args=(job.model_dump(mode="json"),),
                queue=self._queue,
                producer=self._producer,
                argsrepr="",
                kwargsrepr="",
            )
        except QueueFull:
            raise  # the connection is fine; the job is one too many
        except Exception:
            self._producer.release()
            self._producer = None  # a fresh connection for the next job
            raise

    def close(self) -> None:
        """Give the producer back to the process's pool (the mirror calls this when it stops)."""
        if self._producer is not None:
            self._producer.release()
            self._producer = None
