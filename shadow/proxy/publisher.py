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
    itself. The mirror hands it the jobs that gathered while it was busy (`publish_many`),
    which the local queue takes in one transaction. Once the local queue has refused a job at
    its bound, each next job is first checked against the bound, so that a full queue refuses
    it before its message is built, until a check finds room again.
    """

    def __init__(self, settings: Settings) -> None:
        self._app = create_celery(settings, bounded=True)
        self._queue = settings.queue
        self._acquire_s = settings.broker_publish_timeout_s
        self._producer: Any = None
        self._was_full = False

    def __call__(self, job: ShadowJob) -> None:
        """Publish one job; QueueFull when the local queue holds its bound."""
        producer = self._taken_producer()
        try:
            self._send(producer, job)
        except QueueFull:
            raise  # the connection is fine; the job is one too many
        except Exception:
            self._drop_producer()
            raise

    def publish_many(self, jobs: list[ShadowJob]) -> list[Exception | None]:
        """Publish jobs together: for each, None when it is in the queue, else why not.

        On the local queue they go in one transaction (`Channel.batch`): one commit for all
        instead of one per job. Elsewhere they go one by one.
        """
        try:
            producer = self._taken_producer()
        except Exception as exc:
            return [exc for _ in jobs]
        batch = getattr(producer.channel, "batch", None)
        if batch is None or len(jobs) == 1:
            return [self._outcome(job) for job in jobs]
        outcomes: list[Exception | None] = []
        try:
            with batch():
                for job in jobs:
                    try:
                        self._send(producer, job)
                    except QueueFull as full:
                        outcomes.append(full)
                    else:
                        outcomes.append(None)
        except Exception as exc:  # rolled back: none of them is in the queue
            self._drop_producer()
            return [exc for _ in jobs]
        return outcomes

    def _outcome(self, job: ShadowJob) -> Exception | None:
        try:
            self(job)
        except Exception as exc:
            return exc
        return None

    def _taken_producer(self) -> Any:
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
        return self._producer

    def _send(self, producer: Any, job: ShadowJob) -> None:
        if self._was_full:
            # the local queue refused the last job: refuse before Celery builds the message
            full = getattr(producer.channel, "full", None)
            self._was_full = full is not None and full(self._queue)
            if self._was_full:
                raise QueueFull(f"the local queue {self._queue!r} is at its bound")
        try:
            self._app.send_task(
                MIRROR_PAIR,
                args=(job.model_dump(mode="json"),),
                queue=self._queue,
                producer=producer,
                declare=[],  # declared when the producer was taken
                argsrepr="",
                kwargsrepr="",
            )
        except QueueFull:
            self._was_full = True
            raise

    def _drop_producer(self) -> None:
        if self._producer is not None:
            self._producer.release()
            self._producer = None  # a fresh connection for the next job

    def close(self) -> None:
        """Give the producer back to the process's pool (the mirror calls this when it stops)."""
        if self._producer is not None:
            self._producer.release()
            self._producer = None
