"""The retention period: pairs older than their use case's `retention_days` are purged.

Run by Celery beat (`switchover worker --beat`), by a thread of the embedded server, or by
`switchover db purge`. Deletes go in chunks, each its own transaction, so a purge of months of
traffic neither holds one long lock nor loses its progress when interrupted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from shadow.config import SwitchoverConfig
from storage import repository
from storage.db import session_scope

log = logging.getLogger(__name__)

CHUNK = 1000


@dataclass
class Purged:
    """What a purge removed (or, dry, would remove) of one use case."""

    use_case: str
    before: datetime
    pairs: int = 0
    scores: int = 0
    noise_reasks: int = 0


def cutoffs(config: SwitchoverConfig, use_cases: list[str], now: datetime) -> dict[str, datetime]:
    """The time before which each use case's pairs expire; use cases that keep all are absent.

    A use case no longer in the configuration follows the top-level `privacy.retention_days`.
    """
    found = {}
    for name in use_cases:
        days = config.privacy_for(name).retention_days
        if days is not None:
            found[name] = now - timedelta(days=days)
    return found


def purge_expired(
    config: SwitchoverConfig,
    now: datetime | None = None,
    dry_run: bool = False,
    chunk: int = CHUNK,
    engine: Engine | None = None,
) -> list[Purged]:
    """Delete expired pairs with their scores and noise re-asks; what went, per use case."""
    with session_scope(engine) as session:
        names = repository.stored_use_cases(session)
    report = []
    for name, before in cutoffs(config, names, now or datetime.now(UTC)).items():
        purged = Purged(name, before)
        if dry_run:
            with session_scope(engine) as session:
                counts = repository.count_expired(session, name, before)
            purged.pairs, purged.scores, purged.noise_reasks = counts
        else:
            while True:
                with session_scope(engine) as session:
                    ids = repository.expired_pair_ids(session, name, before, chunk)
                    pairs, scores, noise = repository.delete_pairs(session, ids)
                purged.pairs += pairs
                purged.scores += scores
                purged.noise_reasks += noise
                if len(ids) < chunk:
                    break
            if purged.pairs:
                log.info(
                    "retention: purged %s pairs of %s received before %s",
                    purged.pairs,
                    name,
                    before.isoformat(timespec="seconds"),
                )
        report.append(purged)
    return report
