"""Queries. Functions take a session and never commit: the caller's unit of work does."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage import aggregates
from storage.aggregates import PAIRS
from storage.models import (
    ApiToken,
    CapacityRun,
    CriteriaVersion,
    DeadLetter,
    Decision,
    Import,
    LiveCount,
    NoiseReask,
    RequestPair,
    RolloutEvent,
    RolloutState,
    Score,
    UseCase,
)
from storage.schemas import AnswerFields, PairCreate


def _insert_ignoring_duplicates(session: Session, model: Any, values: dict[str, Any]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING; True when the row is new."""
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    key = next(iter(model.__table__.primary_key.columns))
    statement = module.insert(model).values(**values).on_conflict_do_nothing().returning(key)
    # RETURNING rather than rowcount: psycopg reports -1 for a skipped conflicting row.
    return session.execute(statement).first() is not None


def _side(prefix: str, answer: AnswerFields) -> dict[str, Any]:
    fields = answer.model_dump(exclude={"error", "error_kind"})
    row = {f"{prefix}_{key}": value for key, value in fields.items()}
    if prefix == "candidate":
        row["candidate_error"] = answer.error
        row["candidate_error_kind"] = answer.error_kind
    return row


def insert_pair(session: Session, pair: PairCreate) -> bool:
    """Store a pair (and its noise re-ask) once; False when this id was already stored."""
    _insert_ignoring_duplicates(session, UseCase, {"name": pair.use_case})
    values = pair.model_dump(exclude={"primary", "candidate", "noise"})
    values["status"] = pair.status
    values.update(_side("primary", pair.primary))
    values.update(_side("candidate", pair.candidate))
    # The primary's status code column is required: a mirrored answer always has one.
    values["primary_status_code"] = pair.primary.status_code or 200
    if not _insert_ignoring_duplicates(session, RequestPair, values):
        return False
    aggregates.add_pairs(
        session, [(pair.use_case, pair.candidate_name, pair.feature, pair.created_at)]
    )
    if pair.noise is not None:
        session.add(NoiseReask(pair_id=pair.id, **pair.noise.model_dump()))
    return True


def count_pairs(
    session: Session,
    use_case: str | None = None,
    since: datetime | None = None,
    candidate: str | None = None,
) -> int:
    """How many pairs are stored (for one use case, or all; received since a time, or ever)."""
    query = select(func.count()).select_from(RequestPair)
    if use_case is not None:
        query = query.where(RequestPair.use_case == use_case)
    if candidate is not None:
        query = query.where(RequestPair.candidate_name == candidate)
    if since is not None:
        query = query.where(RequestPair.created_at >= since)
    return int(session.scalar(query) or 0)


def add_criteria_version(
    session: Session, use_case: str, text: str, author: str
) -> CriteriaVersion:
    """Store a new version of a use case's criteria (numbered 1, 2, …)."""
    latest = session.scalar(
        select(func.max(CriteriaVersion.version)).where(CriteriaVersion.use_case == use_case)
    )
    row = CriteriaVersion(use_case=use_case, version=(latest or 0) + 1, text=text, author=author)
    session.add(row)
    session.flush()
    return row


def latest_criteria(session: Session, use_case: str) -> CriteriaVersion | None:
    """The criteria version in force for a use case."""
    return session.scalars(
        select(CriteriaVersion)
        .where(CriteriaVersion.use_case == use_case)
        .order_by(CriteriaVersion.version.desc())
        .limit(1)
    ).first()


def add_decision(session: Session, decision: Decision) -> Decision:
    """Store an evaluated verdict."""
    session.add(decision)
    session.flush()
    return decision


def list_decisions(
    session: Session, use_case: str, limit: int = 100, candidate: str = "default"
) -> Sequence[Decision]:
    """Stored verdicts of a use case's candidate, newest first."""
    return session.scalars(
        select(Decision)
        .where(Decision.use_case == use_case, Decision.candidate == candidate)
        .order_by(Decision.evaluated_at.desc(), Decision.id.desc())
        .limit(limit)
    ).all()


def pair_window(
    session: Session, use_case: str, candidate: str | None = None
) -> tuple[int, datetime | None, datetime | None]:
    """How many pairs a use case (one candidate, or all) has, and the first and last arrival.

    The count is the aggregates' (kept with every pair stored or deleted): counting the rows
    would read all of them.
    """
    query = select(func.min(RequestPair.created_at), func.max(RequestPair.created_at)).where(
        RequestPair.use_case == use_case
    )
    if candidate is not None:
        query = query.where(RequestPair.candidate_name == candidate)
    first, last = session.execute(query).one()
    return aggregates.pair_count(session, use_case, candidate), first, last


def add_token(session: Session, name: str, role: str, token_sha256: str) -> ApiToken:
    """Store an API token's hash."""
    row = ApiToken(name=name, role=role, token_sha256=token_sha256)
    session.add(row)
    session.flush()
    return row


def token_by_hash(session: Session, token_sha256: str) -> ApiToken | None:
    """The token with this hash, if any."""
    return session.scalars(select(ApiToken).where(ApiToken.token_sha256 == token_sha256)).first()


def list_tokens(session: Session) -> list[ApiToken]:
    """Every stored token, oldest first."""
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))


def delete_token(session: Session, row: ApiToken) -> None:
    """Remove a token: requests bearing it are refused from now on."""
    session.delete(row)
    session.flush()


def add_capacity_run(session: Session, run: CapacityRun) -> CapacityRun:
    """Store a replay run."""
    session.add(run)
    session.flush()
    return run


def list_capacity_runs(
    session: Session, use_case: str, limit: int = 50, candidate: str | None = None
) -> Sequence[CapacityRun]:
    """Replay runs of a use case (of one candidate, or all), newest first."""
    query = select(CapacityRun).where(CapacityRun.use_case == use_case)
    if candidate is not None:
        query = query.where(CapacityRun.candidate == candidate)
    return session.scalars(
        query.order_by(CapacityRun.started_at.desc(), CapacityRun.id.desc()).limit(limit)
    ).all()


def latest_capacity(session: Session, use_case: str, candidate: str = "default") -> float | None:
    """`capacity.rps_at_slo` of the newest replay run of a candidate that found one."""
    query = (
        select(CapacityRun.rps_at_slo)
        .where(
            CapacityRun.use_case == use_case,
            CapacityRun.candidate == candidate,
            CapacityRun.rps_at_slo.is_not(None),
        )
        .order_by(CapacityRun.started_at.desc(), CapacityRun.id.desc())
        .limit(1)
    )
    return session.scalar(query)


def captured_requests(
    session: Session, use_case: str, limit: int
) -> Sequence[tuple[datetime, str, bool, str]]:
    """(received at, endpoint, stream, request body) of the newest stored requests, oldest first."""
    rows = (
        session.execute(
            select(
                RequestPair.created_at,
                RequestPair.endpoint,
                RequestPair.stream,
                RequestPair.request_body,
            )
            .where(RequestPair.use_case == use_case, RequestPair.request_body.is_not(None))
            .distinct()  # a request mirrored to several candidates is stored once for each
            .order_by(RequestPair.created_at.desc())
            .limit(limit)
        )
        .tuples()
        .all()
    )
    return list(reversed(rows))  # type: ignore[arg-type]


def traffic_summary(
    session: Session, use_case: str, candidate: str | None = None
) -> tuple[float | None, int, int]:
    """Summed `cost.primary_usd`, how many pairs have it, and the busiest bucket's pair count.

    From the score aggregates' 10-minute buckets (`aggregates.BUCKET_S`): no pair or score row
    is read, however many are stored. With `candidate`, over that candidate's pairs only (its
    own sample of the traffic).
    """
    costs = aggregates.bucket_sums(session, use_case, "cost.primary_usd", candidate=candidate)
    priced = sum(n for _, n, _, _ in costs)
    total = sum(value for _, _, value, _ in costs) if priced else None
    pairs = aggregates.bucket_sums(session, use_case, PAIRS, candidate=candidate)
    busiest = max((n for _, n, _, _ in pairs), default=0)
    return total, priced, busiest


def rollout_state(session: Session, use_case: str, lock: bool = False) -> RolloutState | None:
    """A use case's stored rollout state; `lock` holds the row until the unit of work ends."""
    query = select(RolloutState).where(RolloutState.use_case == use_case)
    if lock:
        query = query.with_for_update()
    return session.scalars(query).first()


def rollout_states(session: Session) -> Sequence[RolloutState]:
    """Every stored rollout state."""
    return session.scalars(select(RolloutState)).all()


def set_rollout_state(
    session: Session, use_case: str, percent: float, since: datetime, candidate: str | None = None
) -> RolloutState:
    """Store a use case's live percentage, when it was set and which candidate takes it."""
    row = session.get(RolloutState, use_case)
    if row is None:
        row = RolloutState(use_case=use_case, percent=percent, since=since, candidate=candidate)
        session.add(row)
    else:
        row.percent, row.since, row.candidate = percent, since, candidate
    session.flush()
    return row


def add_rollout_event(session: Session, event: RolloutEvent) -> RolloutEvent:
    """Store an audited rollout or verdict change."""
    session.add(event)
    session.flush()
    return event


def list_rollout_events(
    session: Session, use_case: str, limit: int = 100, kind: str | None = None
) -> Sequence[RolloutEvent]:
    """A use case's rollout events, newest first (only those of `kind` if given)."""
    query = select(RolloutEvent).where(RolloutEvent.use_case == use_case)
    if kind is not None:
        query = query.where(RolloutEvent.kind == kind)
    return session.scalars(
        query.order_by(RolloutEvent.at.desc(), RolloutEvent.id.desc()).limit(limit)
    ).all()


def unnotified_events(session: Session, use_case: str) -> Sequence[RolloutEvent]:
    """Events whose webhook has not been sent yet, oldest first."""
    return session.scalars(
        select(RolloutEvent)
        .where(RolloutEvent.use_case == use_case, RolloutEvent.notified_at.is_(None))
        .order_by(RolloutEvent.at, RolloutEvent.id)
    ).all()


def add_live_counts(session: Session, counts: dict[tuple[str, datetime, str], int]) -> None:
    """Add (use case, minute, outcome) counts to the stored ones; several proxies add up."""
    if not counts:
        return
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    rows = [
        {"use_case": use_case, "minute": minute, "outcome": outcome, "count": n}
        for (use_case, minute, outcome), n in sorted(counts.items())
    ]
    statement = module.insert(LiveCount).values(rows)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["use_case", "minute", "outcome"],
            set_={"count": LiveCount.count + statement.excluded.count},
        )
    )


def live_counts(session: Session, use_case: str, since: datetime) -> dict[str, int]:
    """Live outcome counts of a use case from the minute bucket holding `since` on."""
    bucket = since.replace(second=0, microsecond=0)
    found = session.execute(
        select(LiveCount.outcome, func.sum(LiveCount.count))
        .where(LiveCount.use_case == use_case, LiveCount.minute >= bucket)
        .group_by(LiveCount.outcome)
    ).tuples()
    return {outcome: int(total) for outcome, total in found}


def stored_use_cases(session: Session) -> list[str]:
    """Names of the use cases that have had pairs stored."""
    return list(session.scalars(select(UseCase.name).order_by(UseCase.name)))


def expired_pair_ids(session: Session, use_case: str, before: datetime, limit: int) -> list[str]:
    """Ids of up to `limit` of a use case's pairs received before `before`, oldest first."""
    query = (
        select(RequestPair.id)
        .where(RequestPair.use_case == use_case, RequestPair.created_at < before)
        .order_by(RequestPair.created_at, RequestPair.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def count_expired(session: Session, use_case: str, before: datetime) -> tuple[int, int, int]:
    """(pairs, scores, noise re-asks) a purge of a use case's pairs before `before` removes."""
    expired = select(RequestPair.id).where(
        RequestPair.use_case == use_case, RequestPair.created_at < before
    )
    pairs = session.scalar(select(func.count()).select_from(expired.subquery()))
    scores = session.scalar(select(func.count()).where(Score.pair_id.in_(expired)))
    noise = session.scalar(select(func.count()).where(NoiseReask.pair_id.in_(expired)))
    return int(pairs or 0), int(scores or 0), int(noise or 0)


def delete_pairs(session: Session, pair_ids: Sequence[str]) -> tuple[int, int, int]:
    """Delete pairs with their scores and noise re-asks; (pairs, scores, re-asks) removed.

    The children are deleted explicitly rather than left to ON DELETE CASCADE, so that the
    counts are known and SQLite behaves the same without its foreign-keys pragma. The score
    aggregates (which hold no text) lose the deleted scores, so verdicts forget them too.
    """
    if not pair_ids:
        return 0, 0, 0
    ids = list(pair_ids)

    def deleted(model: Any, column: Any) -> int:
        result = cast("CursorResult[Any]", session.execute(delete(model).where(column.in_(ids))))
        return int(result.rowcount or 0)

    removed = session.execute(
        delete(Score)
        .where(Score.pair_id.in_(ids))
        .returning(Score.pair_id, Score.metric, Score.value)
    ).tuples()
    # the score aggregates forget purged pairs in the same unit of work
    scores = aggregates.remove_scores(session, list(removed))
    noise = deleted(NoiseReask, NoiseReask.pair_id)
    gone = session.execute(
        select(
            RequestPair.use_case,
            RequestPair.candidate_name,
            RequestPair.feature,
            RequestPair.created_at,
        ).where(RequestPair.id.in_(ids))
    ).tuples()
    aggregates.remove_pairs(session, list(gone))
    return deleted(RequestPair, RequestPair.id), scores, noise


def add_dead_letter(
    session: Session, pair_id: str, use_case: str, kind: str, error: str | None
) -> None:
    """Record an accepted shadow job that was not stored, or a pair whose scoring waits."""
    session.add(DeadLetter(pair_id=pair_id, use_case=use_case, kind=kind, error=error))


def dead_letters(session: Session, kind: str | None = None, limit: int = 1000) -> list[DeadLetter]:
    """Recorded dead letters, oldest first (of one kind)."""
    query = select(DeadLetter).order_by(DeadLetter.id).limit(limit)
    if kind is not None:
        query = query.where(DeadLetter.kind == kind)
    return list(session.scalars(query))


def remove_dead_letters(session: Session, ids: Sequence[int]) -> None:
    """Forget dead letters that were dealt with (a pair whose scoring is queued now)."""
    if ids:
        session.execute(delete(DeadLetter).where(DeadLetter.id.in_(list(ids))))


def has_scores(session: Session, pair_id: str) -> bool:
    """Whether any score of the pair is stored."""
    return session.scalar(select(Score.id).where(Score.pair_id == pair_id).limit(1)) is not None


def get_import(session: Session, import_id: str) -> Import | None:
    """An import by id."""
    return session.get(Import, import_id)


def add_import(session: Session, row: Import) -> Import:
    """Store a new import."""
    session.add(row)
    session.flush()
    return row


def list_imports(session: Session, use_case: str | None = None, limit: int = 100) -> list[Import]:
    """Imports, newest first (of one use case, or all)."""
    query = select(Import)
    if use_case is not None:
        query = query.where(Import.use_case == use_case)
    return list(session.scalars(query.order_by(Import.started_at.desc(), Import.id).limit(limit)))


def import_progress(session: Session, import_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
    """(pairs stored, pairs scored) of each import."""
    if not import_ids:
        return {}
    scored = select(Score.pair_id).where(Score.pair_id == RequestPair.id).exists()
    rows = session.execute(
        select(
            RequestPair.import_id,
            func.count(),
            func.count().filter(scored),
        )
        .where(RequestPair.import_id.in_(list(import_ids)))
        .group_by(RequestPair.import_id)
    ).tuples()
    found = {import_id: (int(n), int(done)) for import_id, n, done in rows if import_id}
    return {import_id: found.get(import_id, (0, 0)) for import_id in import_ids}


def existing_pair_ids(session: Session, pair_ids: Sequence[str]) -> set[str]:
    """Those of `pair_ids` that are stored."""
    found: set[str] = set()
    ids = list(pair_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        found.update(session.scalars(select(RequestPair.id).where(RequestPair.id.in_(chunk))))
    return found


def pair_imports(session: Session, pair_ids: Sequence[str]) -> list[tuple[str, str | None]]:
    """(pair id, import id or None) of the stored pairs among `pair_ids`."""
    found: list[tuple[str, str | None]] = []
    ids = list(pair_ids)
    for start in range(0, len(ids), 500):
        query = select(RequestPair.id, RequestPair.import_id).where(
            RequestPair.id.in_(ids[start : start + 500])
        )
        found += session.execute(query).tuples().all()
    return found


def source_counts(session: Session, use_case: str) -> list[tuple[str, str | None, int]]:
    """(source, import id, pairs) of a use case's stored pairs: live, and each import."""
    rows = session.execute(
        select(RequestPair.source, RequestPair.import_id, func.count())
        .where(RequestPair.use_case == use_case)
        .group_by(RequestPair.source, RequestPair.import_id)
        .order_by(RequestPair.source, RequestPair.import_id)
    ).tuples()
    return [(source, import_id, int(n)) for source, import_id, n in rows]
