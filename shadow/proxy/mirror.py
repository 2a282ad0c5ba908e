"""Handing shadow jobs to the broker without the request path ever waiting on it.

The proxy puts a job into a bounded in-memory buffer (a non-blocking put); one publisher
thread moves jobs from the buffer to the broker (under `switchover serve`: to the relay
process, which publishes them; shadow/proxy/relay.py, where the event loop also writes the
small jobs that need no preparation itself, without the thread: `direct`). When the buffer is
full, or the broker refuses a job (the embedded local queue at its bound: `queue_full`), the
job is dropped and counted in `switchover_shadow_dropped_total`, and in the `journal` when one
is given (embedded mode: the queue file's `dropped` table), which the publisher thread writes
about once a second.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Protocol

from shadow.jobs import ShadowJob
from shadow.metrics import SHADOW_BUFFERED, SHADOW_DROPPED, SHADOW_ENQUEUED

log = logging.getLogger(__name__)

Publish = Callable[[ShadowJob], None]
# Readies a job in the publisher thread before it is published; None: nothing to publish.
Prepare = Callable[[ShadowJob], ShadowJob | None]
# Jobs dropped since the last call, by (use case, reason): a durable record of the drops.
Journal = Callable[[dict[tuple[str, str], int]], None]


class Direct(Protocol):
    """A way to the broker the caller's own thread can take at once (the relay's `LoopRelay`)."""

    def fits(self, job: ShadowJob) -> bool:
        """Whether the job is small enough to be written by the caller's thread."""

    def write(self, job: ShadowJob, fallback: Callable[[ShadowJob], object]) -> bool:
        """Hand the job on without waiting; False when it cannot be taken now.

        `fallback` takes the job back if it turns out later not to have been handed on.
        """


_JOURNAL_EVERY_S = 1.0
# The most jobs the publisher thread hands to the broker at once.
_BATCH_MAX = 50


class Mirror:
    """A bounded buffer of shadow jobs and the thread that publishes them."""

    def __init__(
        self,
        publish: Publish,
        capacity: int,
        prepare: Prepare | None = None,
        journal: Journal | None = None,
        direct: Direct | None = None,
    ) -> None:
        self._publish = publish
        # a publisher that only hands jobs on (the relay's client) leaves the count to the relay
        self._counts_enqueued = bool(getattr(publish, "counts_enqueued", True))
        self._prepare = prepare
        self._direct = direct
        # without a preparer every job goes as it is; with one, only those it says so of
        self._ready_as_is: Callable[[ShadowJob], bool] = getattr(
            prepare, "ready_as_is", lambda job: prepare is None
        )
        self._buffer: queue.Queue[ShadowJob | None] = queue.Queue(maxsize=capacity)
        self._journal = journal
        self._unjournaled: dict[tuple[str, str], int] = {}
        self._unjournaled_lock = threading.Lock()
        self._queue_full_logged = 0.0
        self._thread = threading.Thread(target=self._run, name="switchover-mirror", daemon=True)
        self._thread.start()

    def submit(self, job: ShadowJob) -> bool:
        """Queue a job for publishing; never blocks. False when it had to be dropped."""
        direct = self._direct
        if direct is not None and direct.fits(job) and self._ready_as_is(job):
            if direct.write(job, self._buffered):
                return True
        return self._buffered(job)

    def _buffered(self, job: ShadowJob) -> bool:
        """Queue the job for the publisher thread; False when the buffer is full (dropped)."""
        try:
            self._buffer.put_nowait(job)
        except queue.Full:
            self._dropped(job, "buffer_full")
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

    def _dropped(self, job: ShadowJob, reason: str) -> None:
        SHADOW_DROPPED.labels(job.use_case, reason).inc()
        if self._journal is not None:
            key = (job.use_case, reason)
            with self._unjournaled_lock:
                self._unjournaled[key] = self._unjournaled.get(key, 0) + 1

    def _write_journal(self) -> None:
        if self._journal is None or not self._unjournaled:
            return
        with self._unjournaled_lock:
            counts, self._unjournaled = self._unjournaled, {}
        try:
            self._journal(counts)
        except Exception as exc:
            with self._unjournaled_lock:
                for key, n in counts.items():
                    self._unjournaled[key] = self._unjournaled.get(key, 0) + n
            log.warning("dropped shadow jobs not recorded yet, trying again: %s", exc)

    def _run(self) -> None:
        journaled_at = time.monotonic()
        while True:
            try:
                first = self._buffer.get(timeout=_JOURNAL_EVERY_S)
            except queue.Empty:
                self._write_journal()
                journaled_at = time.monotonic()
                continue
            jobs, closing = self._gather(first)
            if closing or time.monotonic() - journaled_at >= _JOURNAL_EVERY_S:
                self._write_journal()
                journaled_at = time.monotonic()
            self._publish_all(jobs)
            if closing:
                self._write_journal()
                close = getattr(self._publish, "close", None)
                if close is not None:
                    close()  # from this thread, the one that used the publisher
                return

    def _gather(self, first: ShadowJob | None) -> tuple[list[ShadowJob], bool]:
        """`first` and the jobs already waiting behind it (at most `_BATCH_MAX`); closing?

        Jobs that gathered while the thread was publishing go out as one batch (the local
        queue commits once for all of them). It does not wait for more: a pause of Kafka's
        `linger.ms` kind raised the client's p99 at concurrency 1 in bench/proxy_overhead.py,
        the batch then holding the GIL in one stretch.
        """
        if first is None:
            return [], True
        jobs = [first]
        while len(jobs) < _BATCH_MAX:
            try:
                job = self._buffer.get_nowait()
            except queue.Empty:
                break
            if job is None:
                SHADOW_BUFFERED.dec(len(jobs))
                return jobs, True
            jobs.append(job)
        SHADOW_BUFFERED.dec(len(jobs))
        return jobs, False

    def _publish_all(self, jobs: list[ShadowJob]) -> None:
        ready: list[ShadowJob] = []
        for job in jobs:
            try:
                prepared = self._prepare(job) if self._prepare is not None else job
            except Exception as exc:
                self._failed(job, exc)
                continue
            if prepared is not None:
                ready.append(prepared)
        if not ready:
            return
        many = getattr(self._publish, "publish_many", None)
        if many is not None:
            outcomes: list[Exception | None] = many(ready)
        else:
            outcomes = []
            for job in ready:
                try:
                    self._publish(job)
                except Exception as exc:
                    outcomes.append(exc)
                else:
                    outcomes.append(None)
        for job, outcome in zip(ready, outcomes, strict=True):
            if outcome is None:
                if self._counts_enqueued:
                    SHADOW_ENQUEUED.labels(job.use_case).inc()
            else:
                self._failed(job, outcome)

    def _failed(self, job: ShadowJob, exc: Exception) -> None:
        reason = getattr(exc, "drop_reason", "broker_error")
        self._dropped(job, reason)
        if reason == "broker_error":
            log.warning("shadow job %s dropped, the broker refused it: %s", job.pair_id, exc)
        elif time.monotonic() - self._queue_full_logged > 10:
            self._queue_full_logged = time.monotonic()
            log.warning("shadow jobs dropped (%s): %s", reason, exc)
