"""Running an import: take the records in once, then have the candidate answer each.

An import is identified by its use case, format and the files' contents (`import_id_for`), and
each record's pair by the use case and the record key: running the same import again finds
it and asks the candidate only for the records that have no pair yet, so an interrupted run
continues where it stopped and a finished one adds nothing. Pairs are written with their
scores, a batch at a time in one transaction: a killed run leaves whole pairs or none.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import orjson
from sqlalchemy.orm import Session

from evaluators.runtime import ScoringRuntime
from evaluators.service import score_stored_pairs
from shadow.apis.translate import Untranslatable, for_candidate
from shadow.candidate.importer.formats import FORMATS
from shadow.candidate.importer.records import Parsed, Record
from shadow.candidate.replay import Captured, schedule
from shadow.jobs import ShadowJob
from shadow.worker.measure import WorkerRuntime, measure_recorded
from shadow.worker.privacy import Protected, protect
from storage import repository
from storage.db import session_scope
from storage.models import Import, utcnow
from storage.repository import insert_pair

log = logging.getLogger(__name__)

Pace = Literal["uniform", "recorded"]
# Problems kept on the import row (all of them are printed by the CLI).
_KEPT_ERRORS = 200
# Pairs written (with their scores) per transaction.
BATCH = 32


def import_id_for(use_case: str, format_name: str, files: Sequence[Path]) -> str:
    """The id of importing these files' contents into a use case."""
    digest = hashlib.sha256(f"{use_case}\n{format_name}\n".encode())
    for path in files:
        with path.open("rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return "imp_" + digest.hexdigest()[:20]


def read_files(format_name: str, files: Sequence[Path]) -> Parsed:
    """The records and problems of the files, by the format's reader."""
    return FORMATS[format_name](files)


@dataclass
class Plan:
    """An import as stored, and the records still waiting for the candidate."""

    row: Import
    pending: list[Record]
    # the pair ids already stored: a record is pending while one of its candidates' is missing
    present: set[str] = field(default_factory=set)
    candidates: tuple[str | None, ...] = (None,)


def begin(
    session: Session,
    use_case: str,
    format_name: str,
    files: Sequence[Path],
    parsed: Parsed,
    rate: float,
    redact: Callable[[str], str] = str,
    candidates: Sequence[str] = (),
) -> Plan:
    """Store the import with its counts (or find it again) and list the records to mirror.

    `redact` masks what the use case's privacy settings mask in the problems kept;
    `candidates` are the use case's candidates in configuration order (each answers every
    record; empty: one).
    """
    keys = candidate_keys(candidates)
    import_id = import_id_for(use_case, format_name, files)
    unique: dict[str, Record] = {}
    problems = list(parsed.problems)
    repeated = 0
    for record in parsed.records:
        first = unique.setdefault(record.pair_id(use_case), record)
        if first is not record:
            repeated += 1
    ids = list(unique)
    stored_before = repository.existing_pair_ids(session, ids)
    present = stored_before | repository.existing_pair_ids(
        session, [r.pair_id(use_case, key) for r in unique.values() for key in keys if key]
    )
    row = repository.get_import(session, import_id)
    if row is None:
        theirs = _pairs_of_other_imports(session, stored_before, import_id)
        row = repository.add_import(
            session,
            Import(
                id=import_id,
                use_case=use_case,
                format=format_name,
                files=[str(path) for path in files],
                state="running",
                rate=rate,
                read=parsed.read,
                stored=len(unique) - len(theirs),
                skipped=len(problems),
                failed=parsed.failed,
                duplicates=repeated + len(theirs),
                errors=[redact(str(problem)) for problem in problems[:_KEPT_ERRORS]],
            ),
        )
    else:
        row.state, row.rate, row.updated_at = "running", rate, utcnow()
    pending = [
        record
        for record in unique.values()
        if any(record.pair_id(use_case, key) not in present for key in keys)
    ]
    return Plan(row, pending, present, keys)


def candidate_keys(candidates: Sequence[str]) -> tuple[str | None, ...]:
    """Each candidate's part of a record's pair id: None (the record's own id) for the first."""
    return (None, *candidates[1:])


def _pairs_of_other_imports(session: Session, stored: set[str], import_id: str) -> set[str]:
    if not stored:
        return set()
    return {
        pair_id
        for pair_id, owner in repository.pair_imports(session, sorted(stored))
        if owner != import_id
    }


def _job(use_case: str, record: Record, candidate: str, pair_id: str, reask: bool) -> ShadowJob:
    at = record.received_at.timestamp() if record.received_at else time.time()
    return ShadowJob(
        pair_id=pair_id,
        candidate_name=candidate,
        reask=reask,
        use_case=use_case,
        endpoint=record.endpoint,
        received_at=at,
        request_body=orjson.dumps(record.request).decode(),
        stream=record.request.get("stream") is True,
        # no key of the client's is at hand: the primary is re-asked only with a configured one
        client_auth=True,
        primary=None,
        feature=record.feature,
    )


def send_times(records: Sequence[Record], rate: float, pace: Pace) -> list[float]:
    """When to ask the candidate for each record, in seconds from the start.

    `uniform`: every 1/rate s. `recorded`: the records' own inter-arrival gaps (bursts and
    lulls kept) scaled so the mean rate is `rate`, as `switchover replay` does.
    """
    if not records:
        return []
    first = min((r.received_at for r in records if r.received_at), default=None)

    def offset(record: Record) -> float:
        if pace != "recorded" or first is None or record.received_at is None:
            return 0.0
        return (record.received_at - first).total_seconds()

    captured = [Captured(offset(r), r.endpoint, False, {}) for r in records]
    return [at for at, _ in schedule(captured, rate, len(records))]


def _in_order(records: Sequence[Record], pace: Pace) -> list[Record]:
    if pace != "recorded":
        return list(records)
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(records, key=lambda r: r.received_at or oldest)


def _store(batch: Sequence[Protected], scoring: ScoringRuntime, import_id: str) -> tuple[int, int]:
    """Write measured pairs and their scores in one transaction; (pairs new, score rows)."""
    with session_scope() as session:
        written = [p for p in batch if insert_pair(session, p.stored)]
        texts = {p.stored.id: p.transient for p in written if p.transient is not None}
        rows = score_stored_pairs(session, [p.stored.id for p in written], scoring, None, texts)
        row = repository.get_import(session, import_id)
        if row is not None:
            row.updated_at = utcnow()
        return len(written), rows


def mirror(
    runtime: WorkerRuntime,
    scoring: ScoringRuntime,
    plan: Plan,
    *,
    rate: float,
    pace: Pace = "uniform",
    on_pair: Callable[[], None] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Ask the candidate for every pending record at `rate`; store and score; pairs stored.

    Concurrency is the use case's `max_in_flight` (the limiter holds it across processes as
    for live mirroring); a candidate slower than the pace is not asked faster than it answers.
    """
    use_case = plan.row.use_case
    config = runtime.config
    privacy = config.privacy_for(use_case)
    secrets = config.secrets()
    records = _in_order(plan.pending, pace)
    times = send_times(records, rate, pace)
    cap = config.use_cases[use_case].shadow.max_in_flight
    stored = 0
    done: list[Protected] = []
    lock = threading.Lock()

    names = list(config.use_cases[use_case].targets)
    keys = candidate_keys(names)

    def one(record: Record) -> None:
        # every candidate answers the record; one noise re-ask serves them all
        reask = True
        for name, key in zip(names, keys, strict=True):
            pair_id = record.pair_id(use_case, key)
            if pair_id in plan.present:
                continue
            job = _job(use_case, record, name, pair_id, reask)
            forms = config.upstreams[config.use_cases[use_case].targets[name].upstream].forms
            try:
                # the request in the form the candidate's upstream serves, as for a mirrored one
                form, body = for_candidate(record.endpoint, record.request, forms)
            except Untranslatable as exc:
                log.info("record %s not asked of %s: %s", record.key, name, exc)
                continue
            if form != record.endpoint:
                job = job.model_copy(
                    update={
                        "candidate_endpoint": form,
                        "candidate_request": orjson.dumps(body).decode(),
                    }
                )
            pair = measure_recorded(
                runtime,
                job,
                record.primary,
                import_id=plan.row.id,
                primary_request_id=record.primary_request_id,
            )
            reask = False
            if pair is not None:
                with lock:
                    done.append(protect(pair, privacy, secrets))

    def flush(final: bool = False) -> None:
        nonlocal stored
        with lock:
            if not done or (len(done) < BATCH and not final):
                return
            batch = list(done)
            done.clear()
        new, _ = _store(batch, scoring, plan.row.id)
        stored += new
        if on_pair is not None:
            for _ in batch:
                on_pair()

    stop = stop or threading.Event()
    started = time.monotonic()
    running: set[Future[None]] = set()
    pool = ThreadPoolExecutor(max_workers=cap, thread_name_prefix="switchover-import")
    try:
        for at, record in zip(times, records, strict=True):
            while len(running) >= 2 * cap:
                running = _settle(running)
                flush()
            delay = at - (time.monotonic() - started)
            if stop.wait(max(delay, 0)):
                break
            running.add(pool.submit(one, record))
            running = _settle(running, block=False)
            flush()
        while running:
            running = _settle(running)
            flush()
    finally:
        # an interruption keeps what was measured: the calls under way finish and are stored
        for future in running:
            future.cancel()
        pool.shutdown(wait=True)
        flush(final=True)
    return stored


def _settle(running: set[Future[None]], block: bool = True) -> set[Future[None]]:
    """Wait for (or just collect) finished calls; the ones still running. A failure raises."""
    if not running:
        return running
    finished, pending = wait(running, timeout=None if block else 0, return_when=FIRST_COMPLETED)
    for future in finished:
        future.result()
    return set(pending)


def finish(import_id: str, interrupted: bool = False) -> None:
    """Mark the import complete when every record has its pair (else interrupted)."""
    with session_scope() as session:
        row = repository.get_import(session, import_id)
        if row is None:
            return
        mirrored, _ = repository.import_progress(session, [import_id])[import_id]
        row.state = "complete" if mirrored >= row.stored and not interrupted else "interrupted"
        row.updated_at = utcnow()
