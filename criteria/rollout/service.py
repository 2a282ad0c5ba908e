"""Loading and storing rollout state: changes by an admin, and the evaluation cycle's guard.

The rules are `criteria.rollout.rules`'s pure functions; this module feeds them stored figures and
stores what they decide, every change as an audited `RolloutEvent`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from sqlalchemy.orm import Session

from criteria.readiness import service
from criteria.readiness.schemas import ReadinessRead, UseCaseRead
from criteria.rollout import webhook
from criteria.rollout.rules import (
    BROKEN,
    CANDIDATE,
    FALLBACK_PREFIX,
    Action,
    FallbackStats,
    RolloutConfig,
    RolloutRefused,
    mode_of,
    plan_change,
    rollback_reason,
    starting_percent,
)
from criteria.rollout.schemas import FallbackRead, RolloutEventRead, RolloutRead
from criteria.usecases import Catalog, UseCaseInfo
from storage import repository
from storage.models import RolloutEvent

log = logging.getLogger(__name__)

SYSTEM_ACTOR = "switchover"
# A webhook that keeps failing is retried each cycle for this long, then given up on.
NOTIFY_GIVE_UP = timedelta(hours=1)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def plan_of(info: UseCaseInfo) -> RolloutConfig:
    """The use case's rollout plan (the default one when its config has no `rollout:`)."""
    return info.rollout or RolloutConfig()


class LiveState(NamedTuple):
    """A use case's live share and the candidate that takes it."""

    percent: float
    candidate: str


def current(session: Session, info: UseCaseInfo) -> tuple[float, datetime | None]:
    """The live percentage and since when; the config's mode until a change is stored."""
    state = repository.rollout_state(session, info.name)
    if state is None:
        return starting_percent(info.mode, plan_of(info)), None
    return state.percent, _aware(state.since)


def _live_candidate(info: UseCaseInfo, stored: str | None) -> str:
    # the candidate an advance named, while it is still configured; else the lead one
    # (`info` is the lead's: `rollout.candidate`, or the first listed)
    return stored if stored is not None and stored in info.order else info.candidate


def live_candidate(session: Session, info: UseCaseInfo) -> str:
    """The candidate that takes (or last took) the use case's live traffic."""
    state = repository.rollout_state(session, info.name)
    return _live_candidate(info, state.candidate if state is not None else None)


def live_states(session: Session, catalog: Catalog) -> dict[str, LiveState]:
    """Every use case's live percentage and candidate, for the proxies' in-memory copy."""
    stored = {row.use_case: row for row in repository.rollout_states(session)}
    states = {}
    for name in catalog.names():
        info = catalog.get(name)
        row = stored.get(name)
        if row is None:
            states[name] = LiveState(starting_percent(info.mode, plan_of(info)), info.candidate)
        else:
            states[name] = LiveState(row.percent, _live_candidate(info, row.candidate))
    return states


def sync_live(
    session: Session, catalog: Catalog, counts: dict[tuple[str, datetime, str], int]
) -> dict[str, LiveState]:
    """Add a proxy's live counts to the stored ones; every use case's live state."""
    repository.add_live_counts(session, counts)
    return live_states(session, catalog)


def fallback_stats(
    session: Session, info: UseCaseInfo, since: datetime | None, now: datetime
) -> tuple[datetime, FallbackStats]:
    """Live outcomes over the fallback window, not reaching back before the current step."""
    start = now - plan_of(info).fallback_window
    if since is not None and since > start:
        start = since
    return start, FallbackStats(repository.live_counts(session, info.name, start))


def _latest_verdict(session: Session, use_case: str, candidate: str) -> str | None:
    found = repository.list_decisions(session, use_case, limit=1, candidate=candidate)
    return found[0].verdict if found else None


def _event_read(row: RolloutEvent) -> RolloutEventRead:
    return RolloutEventRead.model_validate(row, from_attributes=True)


def status(
    session: Session, info: UseCaseInfo, now: datetime | None = None, history: int = 50
) -> RolloutRead:
    """Where the rollout stands, its plan, fallback figures and recent events."""
    now = now or datetime.now(UTC)
    plan = plan_of(info)
    percent, since = current(session, info)
    live = live_candidate(session, info)
    window_start, stats = fallback_stats(session, info, since, now)
    higher = [step for step in plan.steps if step > percent]
    counts = stats.counts
    return RolloutRead(
        use_case=info.name,
        candidate=live,
        mode=mode_of(percent),
        percent=percent,
        steps=list(plan.steps),
        next_percent=higher[0] if higher else None,
        since=since,
        next_allowed_at=since + plan.min_step_duration if since and higher else None,
        min_step_seconds=plan.min_step_duration.total_seconds(),
        verdict=_latest_verdict(session, info.name, live),
        fallback=FallbackRead(
            window_start=window_start,
            routed=stats.routed,
            served_by_candidate=counts.get(CANDIDATE, 0),
            fallbacks=sum(n for k, n in counts.items() if k.startswith(FALLBACK_PREFIX)),
            broken_streams=counts.get(BROKEN, 0),
            rate=stats.rate,
            limit=plan.max_fallback_rate,
            by_outcome=dict(sorted(counts.items())),
        ),
        history=[
            _event_read(row) for row in repository.list_rollout_events(session, info.name, history)
        ],
    )


def summary(session: Session, info: UseCaseInfo) -> UseCaseRead:
    """The use case's summary with its live mode (not the configured starting point)."""
    read = service.use_case_summary(session, info)
    return read.model_copy(update={"mode": mode_of(current(session, info)[0])})


def change(
    session: Session,
    info: UseCaseInfo,
    action: Action,
    actor: str,
    force: bool = False,
    reason: str | None = None,
    now: datetime | None = None,
    candidate: str | None = None,
) -> RolloutRead:
    """Advance one step (on GO) or roll back to 0 %, as `actor`; the change is audited.

    `candidate` names the one to advance (default: the one live now, else the lead); another
    than the live one can start only from 0 %: one candidate takes live traffic at a time,
    the others keep shadowing. The GO needed is that candidate's.
    """
    now = now or datetime.now(UTC)
    plan = plan_of(info)
    repository.rollout_state(session, info.name, lock=True)
    percent, since = current(session, info)
    live = live_candidate(session, info)
    target = info.for_candidate(candidate or live)  # UnknownCandidate: 404
    chosen = target.candidate
    if chosen != live and percent > 0:
        raise RolloutRefused(
            f"{live} takes {percent:g} % of live traffic: roll back before moving {chosen}"
        )
    verdict = service.evaluate(session, target, now=now).verdict
    step = plan_change(plan, action, percent, since, verdict, now, force, reason)
    repository.set_rollout_state(session, info.name, step.to_percent, now, candidate=chosen)
    repository.add_rollout_event(
        session,
        RolloutEvent(
            use_case=info.name,
            at=now,
            kind=action,
            actor=actor,
            candidate=chosen,
            from_percent=step.from_percent,
            to_percent=step.to_percent,
            verdict=verdict,
            reason=reason,
            forced=step.forced,
            automatic=False,
        ),
    )
    log.warning(
        "rollout of %s (%s): %s %g%% -> %g%% by %s (verdict %s%s)",
        info.name,
        chosen,
        action,
        step.from_percent,
        step.to_percent,
        actor,
        verdict,
        ", forced" if step.forced else "",
    )
    return status(session, info, now)


def guard(
    session: Session, info: UseCaseInfo, readiness: ReadinessRead, now: datetime
) -> RolloutEvent | None:
    """After an evaluation: record a verdict change, and roll back a live rollout that fails.

    `readiness` is the verdict of the candidate that takes (or last took) the live traffic
    (`live_candidate`); another candidate's is not the rollout's concern. Returns the
    automatic rollback, if one was made.
    """
    plan = plan_of(info)
    state = repository.rollout_state(session, info.name, lock=True)
    live = _live_candidate(info, state.candidate if state is not None else None)
    if readiness.candidate != live:
        return None
    percent, since = current(session, info)
    last = repository.list_rollout_events(session, info.name, 1, kind="verdict_change")
    previous = last[0].verdict if last else None
    if previous != readiness.verdict:
        repository.add_rollout_event(
            session,
            RolloutEvent(
                use_case=info.name,
                at=now,
                kind="verdict_change",
                actor=SYSTEM_ACTOR,
                candidate=live,
                from_percent=percent,
                to_percent=percent,
                verdict=readiness.verdict,
                previous_verdict=previous,
                reason="; ".join(readiness.reasons)[:2000] or None,
                automatic=True,
            ),
        )
    critical = [c.name for c in readiness.criteria if c.critical and c.verdict == "FAIL"]
    _, stats = fallback_stats(session, info, since, now)
    why = rollback_reason(plan, percent, critical, stats)
    if why is None:
        return None
    repository.set_rollout_state(session, info.name, 0.0, now, candidate=live)
    log.warning("automatic rollback of %s (%s) from %g%% to 0%%: %s", info.name, live, percent, why)
    return repository.add_rollout_event(
        session,
        RolloutEvent(
            use_case=info.name,
            at=now,
            kind="auto_rollback",
            actor=SYSTEM_ACTOR,
            candidate=live,
            from_percent=percent,
            to_percent=0.0,
            verdict=readiness.verdict,
            reason=why,
            automatic=True,
        ),
    )


def pending_notifications(
    session: Session, info: UseCaseInfo, now: datetime
) -> list[tuple[int, dict[str, object]]]:
    """Events still to be sent (id and payload); ones too old to matter are given up on."""
    pending = []
    for row in repository.unnotified_events(session, info.name):
        if now - _aware(row.at) > NOTIFY_GIVE_UP:
            log.warning("giving up on the webhook of %s event %s", info.name, row.id)
            row.notified_at = now
            continue
        payload = {"use_case": info.name, **_event_read(row).model_dump(mode="json")}
        pending.append((row.id, payload))
    return pending


def mark_notified(session: Session, event_ids: list[int], now: datetime) -> None:
    """Record that these events' webhooks were delivered (or that there was none to send)."""
    for event_id in event_ids:
        row = session.get(RolloutEvent, event_id)
        if row is not None:
            row.notified_at = now


def notify(pending: list[tuple[int, dict[str, object]]], url: str | None) -> list[int]:
    """Send the pending events to the webhook; the ids that need no further attempt."""
    if url is None:
        return [event_id for event_id, _ in pending]
    done = []
    for event_id, payload in pending:
        if webhook.send(url, payload):
            done.append(event_id)
        else:
            break  # keep the order: later events wait for this one's retry
    return done
