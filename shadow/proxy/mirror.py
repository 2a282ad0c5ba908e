"""Handing shadow jobs to the broker without the request path ever waiting on it.

The proxy puts a job into a bounded in-memory buffer (a non-blocking put); one publisher
thread moves jobs from the buffer to the broker. When the buffer is full, or the broker
refuses a job, the job is dropped and counted in `switchover_shadow_dropped_total`.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from shadow.jobs import ShadowJob
from shadow.metrics import SHADOW_BUFFERED, SHADOW_DROPPED, SHADOW_ENQUEUED

log = logging.getLogger(__name__)

Publish = Callable[[ShadowJob], None]


class Mirror:
    """A bounded buffer of shadow jobs and the thread that publishes them."""

    def __init__(self, publish: Publish, capacity: int) -> None:
        self._publish = publish
        self._buffer: queue.Queue[ShadowJob | None] = queue.Queue(maxsize=capacity)
        self._thread = threading.Thread(target=self._run, name="switchover-mirror", daemon=True)
        self._thread.start()

    def submit(self, job: ShadowJob) -> bool:
        """Queue a job for publishing; never blocks. False when it had to be dropped."""
        try:
            self._buffer.put_nowait(job)
        except queue.Full:
            SHADOW_DROPPED.labels(job.use_case, "buffer_full").inc()
            return False
        SHADOW_BUFFERED.inc()
        return True

    @property
    def alive(self) -> bool:
        """Whether the publisher thread is running."""
        return self._thread.is_alive()

    def close(self, timeout_s: float = 5.0) -> None:
        """Publish what is buffered (within `timeout_s`), then stop the thread."""
        try:
            self._buffer.put(None, timeout=timeout_s)
        except queue.Full:
            log.warning("shadow buffer still full at shutdown; its jobs are dropped")
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            job = self._buffer.get()
            if job is None:
                close = getattr(self._publish, "close", None)
                if close is not None:
                    close()  # from this thread, the one that used the publisher
                return
            SHADOW_BUFFERED.dec()
            try:
                self._publish(job)
            except Exception as exc:
                SHADOW_DROPPED.labels(job.use_case, "broker_error").inc()
                log.warning("shadow job %s dropped, the broker refused it: %s", job.pair_id, exc)
            else:
                SHADOW_ENQUEUED.labels(job.use_case).inc()
