"""The scoring task: stored pairs in, score rows out, in batches.

Each stored pair is one message (`enqueue_scoring`); the worker buffers them and runs the task
on up to `BATCH_SIZE` at once (celery-batches), so the embedding model encodes a whole batch
and the database sees one read and one write per batch. Messages are acknowledged after their
batch ran; scores are written once per (pair, metric), so a redelivered message is harmless.
The message of a pair stored without its text (`store_text: false`) carries the texts, so they
exist only in the broker until the pair is scored.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from celery import Celery, Task, shared_task
from celery_batches import Batches, SimpleRequest
from sqlalchemy.exc import DBAPIError, OperationalError

from evaluators.pair import PairTexts
from evaluators.retry import countdown
from evaluators.runtime import current
from evaluators.service import score_stored_pairs
from storage.db import session_scope

log = logging.getLogger(__name__)

SCORE_PAIRS = "evaluators.score_pairs"
BATCH_SIZE = 64
FLUSH_INTERVAL_S = 0.25
# Retry for about a day (backoff capped at a minute) while the database is unreachable.
MAX_ATTEMPTS = 1500
# The embedding model keeps every core busy: a second batch encoded meanwhile would only slow
# it down (its threads wait for each other), so a process runs one batch's evaluators at a
# time; loading and storing, which wait on the database, overlap the next batch's encoding.
_one_batch_at_a_time = threading.Lock()


class ScoringBatches(Batches):  # type: ignore[misc]
    """Batches whose buffer has prefetch room of its own, flushed whole while work is running.

    A worker may take at most `concurrency x prefetch multiplier` unacknowledged messages.
    Buffered scoring messages would use that room up before a batch is full, and then no
    other job (candidate calls) could be taken; so the first scoring message a consumer gets
    widens its prefetch by two batches (one being scored, the next one filling up), as Celery
    itself does for tasks with an ETA.

    celery-batches also flushes whatever is buffered every `flush_interval`. Under load that
    splits batches for good: the buffer cannot fill while the prefetch room is held by batches
    waiting their turn, a split-off part is one more batch in flight, and every later batch
    is cut the same way (seen: batches of 64, 9, 64, 7, … pairs). So while a batch
    of this worker is still unacknowledged, more messages are sure to come when it is, and a
    part-filled buffer waits for them; once nothing is running it is flushed as before.
    """

    def Strategy(self, task: Any, app: Any, consumer: Any) -> Callable[..., None]:
        handler: Callable[..., None] = super().Strategy(task, app, consumer)
        widened: set[int] = set()

        def buffer(*args: Any, **kwargs: Any) -> None:
            qos = consumer.qos
            if qos is not None and id(qos) not in widened:
                widened.add(id(qos))
                qos.increment_eventually(2 * self.flush_every)
            handler(*args, **kwargs)

        return buffer

    def __init__(self) -> None:
        super().__init__()
        self._running: list[Any] = []  # requests handed to the pool, until acknowledged

    def flush(self, requests: Sequence[Any]) -> Any:
        self._running = [r for r in self._running if not r.acknowledged] + list(requests)
        return super().flush(requests)

    def _do_flush(self) -> None:
        part_filled = 0 < self._buffer.qsize() < self.flush_every
        running = any(not r.acknowledged for r in self._running)
        if part_filled and running and self._pending.qsize() == 0:
            return  # the timer comes again; a full batch flushes from the message handler
        super()._do_flush()


def _republish(app: Celery, requests: Sequence[SimpleRequest], exc: Exception) -> None:
    for request in requests:
        attempt = int((request.kwargs or {}).get("attempt", 0)) + 1
        pair_id = request.args[0]
        if attempt > MAX_ATTEMPTS:
            log.error("giving up scoring pair %s after %s attempts: %s", pair_id, attempt, exc)
            continue
        texts = (request.kwargs or {}).get("texts")
        _send(app, pair_id, {"attempt": attempt, "texts": texts}, countdown=countdown(app, attempt))
    log.warning("scoring %s pairs failed, retrying: %s", len(requests), exc)


@shared_task(
    name=SCORE_PAIRS,
    base=ScoringBatches,
    bind=True,
    acks_late=True,
    flush_every=BATCH_SIZE,
    flush_interval=FLUSH_INTERVAL_S,
)
def score_pairs(self: Task[Any, Any], requests: list[SimpleRequest]) -> int:
    """Score a batch of stored pairs (one pair id per message); the number of rows written."""
    pair_ids = [str(request.args[0]) for request in requests]
    texts = {
        str(request.args[0]): PairTexts.model_validate(request.kwargs["texts"])
        for request in requests
        if (request.kwargs or {}).get("texts")
    }
    try:
        started = time.perf_counter()
        with session_scope() as session:
            written = score_stored_pairs(session, pair_ids, current(), _one_batch_at_a_time, texts)
        elapsed = time.perf_counter() - started
        log.info("scored %s pairs in %.3f s (%s rows)", len(pair_ids), elapsed, written)
        return written
    except (OperationalError, DBAPIError) as exc:
        _republish(self.app, requests, exc)
        return 0


def _send(
    app: Celery, pair_id: str, kwargs: dict[str, Any], countdown: float | None = None
) -> None:
    present = {key: value for key, value in kwargs.items() if value is not None}
    # Celery logs `kwargsrepr` instead of the kwargs: the texts never reach a log line.
    shown = {key: "<not logged>" if key == "texts" else value for key, value in present.items()}
    app.send_task(
        SCORE_PAIRS,
        args=(pair_id,),
        kwargs=present,
        kwargsrepr=repr(shown),
        countdown=countdown,
    )


def enqueue_scoring(app: Celery, pair_id: str, texts: PairTexts | None = None) -> None:
    """Ask `app`'s broker for a stored pair to be scored (its routes pick the scoring queue).

    `texts` are those of a pair stored without them; they travel in the message only.
    """
    _send(app, pair_id, {"texts": texts.model_dump(mode="json") if texts else None})
