"""Periodic re-evaluation of every use case (Celery beat, or a thread when embedded)."""

from __future__ import annotations

import logging

from celery import shared_task

from criteria import service
from storage.db import session_scope

log = logging.getLogger(__name__)

EVALUATE_ALL = "criteria.evaluate_all"

_catalog: service.Catalog | None = None


def configure(catalog: service.Catalog) -> None:
    """Tell this process which use cases exist (the top layer knows the configuration)."""
    global _catalog
    _catalog = catalog


def evaluate_all(catalog: service.Catalog) -> dict[str, str]:
    """Evaluate and store every use case's verdict; one failing use case does not stop the rest."""
    verdicts: dict[str, str] = {}
    for name in catalog.names():
        try:
            with session_scope() as session:
                verdicts[name] = service.evaluate(session, catalog.get(name)).verdict
        except Exception:
            log.exception("evaluating use case %r failed", name)
            verdicts[name] = "error"
    return verdicts


@shared_task(name=EVALUATE_ALL, ignore_result=True)
def evaluate_all_task() -> dict[str, str]:
    """The beat entry point."""
    if _catalog is None:
        log.warning("criteria.evaluate_all ran before the use cases were configured")
        return {}
    return evaluate_all(_catalog)
