"""Celery tasks of the shadow leg. Thin: ids and payloads in, plain functions do the work.

An accepted job ends in one of three ways, never acknowledged and forgotten: a stored pair
(a candidate failure is a pair with its error kind); a retry while the database is
unreachable; or a dead letter (`dead_letters` table and `switchover_shadow_failed_total`)
saying why it could not be stored.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task
from celery.exceptions import Retry
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from evaluators.retry import countdown
from evaluators.tasks import enqueue_scoring
from shadow.jobs import MIRROR_PAIR, PURGE_EXPIRED, SWEEP_UNSCORED, ShadowJob
from shadow.metrics import CANDIDATE_ERRORS, SHADOW_FAILED, SHADOW_SKIPPED
from shadow.worker.limiter import SlotTimeout
from shadow.worker.measure import URLS, NotMeasured, get_runtime, measure_pair
from shadow.worker.privacy import protect
from shadow.worker.retention import purge_expired
from storage.db import session_scope
from storage.models import RequestPair
from storage.repository import (
    add_dead_letter,
    dead_letters,
    has_scores,
    insert_pair,
    remove_dead_letters,
)
from storage.schemas import PairCreate

log = logging.getLogger(__name__)

# Retry storing for about a day (backoff capped at a minute): a database outage loses nothing.
STORE_RETRIES = 1500
SCORING_NOT_QUEUED = "scoring_not_queued"
_ERROR_TEXT_LIMIT = 2000
# A candidate at its `max_in_flight`: its job goes back to the queue for this long, rather than
# hold a worker thread that another candidate's job could use.
SLOT_RETRY_S = 1.0


def is_outage(exc: BaseException) -> bool:
    """Whether a database error means "not reachable now" rather than "these values are bad".

    A value the database refuses (too long, out of range: `DataError`, `IntegrityError`) is
    refused again at every retry; only a lost or refused connection is worth waiting for.
    """
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def _stored(pair_id: str) -> tuple[bool, bool]:
    """Whether the pair is stored, and whether it has scores (False, False when unknown)."""
    try:
        with session_scope() as session:
            if session.get(RequestPair, pair_id) is None:
                return False, False
            return True, has_scores(session, pair_id)
    except (OperationalError, DBAPIError):
        return False, False


def _dead_letter(task: Task[Any, Any], job: dict[str, Any], kind: str, exc: BaseException) -> str:
    """Record a job that cannot be stored; retry while the record itself cannot be written."""
    pair_id, use_case = str(job.get("pair_id")), str(job.get("use_case"))
    reason = f"{type(exc).__name__}: {exc}"[:_ERROR_TEXT_LIMIT]
    try:
        with session_scope() as session:
            add_dead_letter(session, pair_id, use_case, kind, reason)
    except (OperationalError, DBAPIError) as db_exc:
        wait = countdown(task.app, task.request.retries)
        log.warning("recording dead letter %s failed, retrying in %s s: %s", pair_id, wait, db_exc)
        raise task.retry(countdown=wait, exc=db_exc) from db_exc
    SHADOW_FAILED.labels(use_case, kind).inc()
    log.error("pair %s not stored (%s): %s", pair_id, kind, reason)
    return kind


def _queue_scoring(task: Task[Any, Any], pair_id: str, use_case: str, texts: Any) -> None:
    try:
        enqueue_scoring(task.app, pair_id, texts)
    except Exception as exc:
        # The pair is stored: a retry of this task would find it so and stop. The periodic
        # sweep (`shadow.sweep_unscored`) queues it once the broker is back.
        log.warning("pair %s stored, its scoring not queued yet: %s", pair_id, exc)
        try:
            with session_scope() as session:
                add_dead_letter(session, pair_id, use_case, SCORING_NOT_QUEUED, str(exc))
        except (OperationalError, DBAPIError):
            log.exception(
                "pair %s stored but not queued for scoring; `switchover rescore --use-case %s "
                "--unscored` scores it",
                pair_id,
                use_case,
            )


@shared_task(name=MIRROR_PAIR, bind=True, acks_late=True, max_retries=STORE_RETRIES)
def mirror_pair(
    self: Task[Any, Any], job: dict[str, Any], measured: dict[str, Any] | None = None
) -> str:
    """Replay one request to the candidate and store the pair once.

    A retry after a database error carries the measured pair, so the candidate is not asked
    twice; a redelivered job whose pair is already stored only makes sure it gets scored. What
    is stored is what the use case's `privacy:` allows; texts that are not stored go to the
    scoring message only.
    """
    try:
        shadow_job = ShadowJob.model_validate(job)
        if measured is not None:
            pair = PairCreate.model_validate(measured)
        else:
            stored, scored = _stored(shadow_job.pair_id)
            if stored:
                if not scored:
                    # stored by a worker that died before it queued the scoring
                    _queue_scoring(self, shadow_job.pair_id, shadow_job.use_case, None)
                return "duplicate"
            pair = measure_pair(get_runtime(), shadow_job)
        config = get_runtime().config
        protected = protect(pair, config.privacy_for(pair.use_case), config.secrets())
    except Retry:
        raise
    except SlotTimeout:
        # The candidate is at its `max_in_flight`: queued again as a new message (published
        # before this one is acknowledged) rather than hold a worker thread another candidate's
        # job could use; waiting is not a failure and must not use up the store retries.
        self.apply_async(args=(job,), countdown=SLOT_RETRY_S)
        return "requeued"
    except NotMeasured as exc:
        if exc.kind == URLS:
            SHADOW_SKIPPED.labels(str(job.get("use_case")), URLS).inc()
            return "skipped"
        return _dead_letter(self, job, exc.kind, exc)
    except Exception as exc:
        return _dead_letter(self, job, "unexpected_error", exc)
    try:
        with session_scope() as session:
            inserted = insert_pair(session, protected.stored)
    except Exception as exc:
        if not is_outage(exc):
            return _dead_letter(self, job, "refused_by_database", exc)
        wait = countdown(self.app, self.request.retries)
        log.warning("storing pair %s failed, retrying in %s s: %s", pair.id, wait, exc)
        raise self.retry(args=(job, pair.model_dump(mode="json")), countdown=wait, exc=exc) from exc
    if not inserted:
        return "duplicate"
    _count_candidate_error(pair)
    _queue_scoring(self, pair.id, pair.use_case, protected.transient)
    return "stored"


def sweep_unscored(app: Any, limit: int = 1000) -> int:
    """Queue the scoring of stored pairs whose scoring could not be queued; how many."""
    with session_scope() as session:
        waiting = [
            (row.id, row.pair_id) for row in dead_letters(session, SCORING_NOT_QUEUED, limit)
        ]
    queued: list[int] = []
    try:
        for row_id, pair_id in waiting:
            enqueue_scoring(app, pair_id)
            queued.append(row_id)
    finally:
        with session_scope() as session:
            remove_dead_letters(session, queued)
    if queued:
        log.info("queued the scoring of %s pairs stored while the broker was down", len(queued))
    return len(queued)


@shared_task(name=SWEEP_UNSCORED, bind=True, ignore_result=True)
def sweep_unscored_pairs(self: Task[Any, Any]) -> int:
    """The beat entry point of the sweep of pairs stored without their scoring queued."""
    return sweep_unscored(self.app)


def _count_candidate_error(pair: PairCreate) -> None:
    kind = pair.candidate.error_kind
    if kind is not None:
        CANDIDATE_ERRORS.labels(pair.use_case, pair.candidate_model, kind).inc()
        log.debug("pair %s of %s: the candidate failed (%s)", pair.id, pair.use_case, kind)


@shared_task(name=PURGE_EXPIRED, ignore_result=True)
def purge_expired_pairs() -> int:
    """The beat entry point of the retention period; how many pairs were purged."""
    return sum(purged.pairs for purged in purge_expired(get_runtime().config))
