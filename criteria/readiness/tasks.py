"""Periodic re-evaluation of every use case (Celery beat, or a thread when embedded)."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime

from celery import shared_task

from criteria.readiness import service
from criteria.rollout import service as rollout_service
from criteria.usecases import Catalog, UseCaseInfo
from storage.db import session_scope

log = logging.getLogger(__name__)

EVALUATE_ALL = "criteria.evaluate_all"

_catalog: Catalog | None = None


def configure(catalog: Catalog) -> None:
    """Tell this process which use cases exist (the top layer knows the configuration)."""
    global _catalog
    _catalog = catalog


def evaluate_all(catalog: Catalog) -> dict[str, str]:
    """Evaluate and store every use case's verdict; one failing use case does not stop the rest.

    Every candidate's verdict is stored; the verdict of the candidate that takes the live
    traffic then guards the use case's rollout (a verdict change is recorded, a failing live
    rollout goes back to 0 %) and the webhook gets the events not yet sent. Returned: that
    candidate's verdict per use case.
    """
    verdicts: dict[str, str] = {}
    for name in catalog.names():
        info = catalog.get(name)
        try:
            with session_scope() as session:
                live = info.for_candidate(rollout_service.live_candidate(session, info))
                readiness = service.evaluate_and_store(session, live)
            verdicts[name] = readiness.verdict
            with session_scope() as session:
                rollout_service.guard(session, info, readiness, datetime.now(UTC))
            _notify(info)
        except Exception:
            log.exception("evaluating use case %r failed", name)
            verdicts[name] = "error"
    return verdicts


def _notify(info: UseCaseInfo) -> None:
    """Send pending events outside any transaction, then mark them sent."""
    now = datetime.now(UTC)
    with session_scope() as session:
        pending = rollout_service.pending_notifications(session, info, now)
    if not pending:
        return
    env = rollout_service.plan_of(info).webhook_url_env
    url = (os.environ.get(env) or None) if env else None
    done = rollout_service.notify(pending, url)
    with session_scope() as session:
        rollout_service.mark_notified(session, done, now)


@shared_task(name=EVALUATE_ALL, ignore_result=True)
def evaluate_all_task() -> dict[str, str]:
    """The beat entry point."""
    if _catalog is None:
        log.warning("criteria.evaluate_all ran before the use cases were configured")
        return {}
    return evaluate_all(_catalog)
