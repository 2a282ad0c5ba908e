"""Celery tasks of the shadow leg. Thin: ids and payloads in, plain functions do the work."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task
from sqlalchemy.exc import DBAPIError, OperationalError

from evaluators.tasks import enqueue_scoring
from shadow.jobs import MIRROR_PAIR, PURGE_EXPIRED, ShadowJob
from shadow.worker.measure import get_runtime, measure_pair
from shadow.worker.privacy import protect
from shadow.worker.retention import purge_expired
from storage.db import session_scope
from storage.models import RequestPair
from storage.repository import insert_pair
from storage.schemas import PairCreate

log = logging.getLogger(__name__)

# Retry storing for about a day (backoff capped at a minute): a database outage loses nothing.
STORE_RETRIES = 1500


def _already_stored(pair_id: str) -> bool:
    try:
        with session_scope() as session:
            return session.get(RequestPair, pair_id) is not None
    except (OperationalError, DBAPIError):
        return False


@shared_task(name=MIRROR_PAIR, bind=True, acks_late=True, max_retries=STORE_RETRIES)
def mirror_pair(
    self: Task[Any, Any], job: dict[str, Any], measured: dict[str, Any] | None = None
) -> str:
    """Replay one request to the candidate and store the pair once.

    A retry after a database error carries the measured pair, so the candidate is not asked
    twice; a redelivered job whose pair is already stored does nothing. What is stored is what
    the use case's `privacy:` allows; texts that are not stored go to the scoring message only.
    """
    shadow_job = ShadowJob.model_validate(job)
    if measured is not None:
        pair: PairCreate | None = PairCreate.model_validate(measured)
    elif _already_stored(shadow_job.pair_id):
        return "duplicate"
    else:
        pair = measure_pair(get_runtime(), shadow_job)
    if pair is None:
        return "skipped"
    config = get_runtime().config
    protected = protect(pair, config.privacy_for(pair.use_case), config.secrets())
    try:
        with session_scope() as session:
            inserted = insert_pair(session, protected.stored)
    except (OperationalError, DBAPIError) as exc:
        countdown = min(60, 2 ** min(self.request.retries, 6))
        log.warning("storing pair %s failed, retrying in %s s: %s", pair.id, countdown, exc)
        raise self.retry(
            args=(job, pair.model_dump(mode="json")), countdown=countdown, exc=exc
        ) from exc
    if not inserted:
        return "duplicate"
    try:
        enqueue_scoring(self.app, pair.id, protected.transient)
    except Exception:
        # The pair is stored; retrying would only find it stored and never score it.
        log.exception(
            "pair %s stored but not queued for scoring; `switchover rescore --use-case %s "
            "--unscored` scores it",
            pair.id,
            pair.use_case,
        )
    return "stored"


@shared_task(name=PURGE_EXPIRED, ignore_result=True)
def purge_expired_pairs() -> int:
    """The beat entry point of the retention period; how many pairs were purged."""
    return sum(purged.pairs for purged in purge_expired(get_runtime().config))
