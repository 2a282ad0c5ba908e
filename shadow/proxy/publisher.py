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
    instead of taking one from the pool per job, declares the queue once per connection
    instead of on every job (kombu copies and re-binds the queue on each `maybe_declare`), and
    skips Celery's printable copy of the arguments: together these cost more than the publish
    itself. Once the local queue has refused a job at its bound, each next job is first checked
    against the bound, so that a full queue refuses it before its message is built, until a
    check finds room again.
    """

    def __init__(self, settings: Settings) -> None:
        self._app = create_celery(settings, bounded=True)
        self._queue = settings.queue
        self._acquire_s = settings.broker_publish_timeout_s
        self._producer: Any = None
        self._was_full = False

    def __call__(self, job: ShadowJob) -> None:
        if self._producer is None:
            # kombu's producer pools are per broker URL for the whole process, not per app:
            # never wait for ever on one that others have taken.
            producer = self._app.producer_pool.acquire(block=True, timeout=self._acquire_s)
            try:
                producer.maybe_declare(self._app.amqp.queues[self._queue])
            except Exception:
                producer.release()
                raise
            self._producer = producer
        if self._was_full:
            # the local queue refused the last job: refuse before Celery builds the message
            full = getattr(self._producer.channel, "full", None)
            self._was_full = full is not None and full(self._queue)
            if self._was_full:
                raise QueueFull(f"the local queue {self._queue!r} is at its bound")
        try:
            self._app.send_task(
                MIRROR_PAIR,
                args=(job.model_dump(mode="json"),),
                queue=self._queue,
                producer=self._producer,
                declare=[],  # declared when the producer was taken
                argsrepr="",
                kwargsrepr="",
            )
        except QueueFull:
            self._was_full = True
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
