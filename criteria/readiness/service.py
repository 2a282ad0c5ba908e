"""Loading the evidence of a use case, evaluating its criteria, storing the verdict."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import yaml
from sqlalchemy.orm import Session

from criteria.cost.model import CostProjection
from criteria.cost.service import cost_projection
from criteria.errors import InvalidCriteria
from criteria.readiness import evidence
from criteria.readiness.engine import (
    RECENT,
    Bounds,
    CriterionData,
    CriterionResult,
    Pace,
    decide,
    pace,
)
from criteria.readiness.ranking import Standing, rank
from criteria.readiness.schema import CriteriaError, CriteriaSet, Criterion, parse_criteria
from criteria.readiness.schemas import (
    CandidateReadinessRead,
    CriterionRead,
    ReadinessRead,
    SourceShare,
    UseCaseRead,
    Window,
)
from criteria.readiness.warnings import CriterionWarning, criteria_warnings
from criteria.usecases import Catalog, UseCaseInfo
from evaluators.catalog import CATALOG
from storage import repository
from storage.models import Decision


@lru_cache(maxsize=256)
def _parsed(text: str, source: str) -> CriteriaSet:
    # parsing YAML with line numbers costs tens of ms; each verdict re-reads the same text
    return parse_criteria(text, source)


def parse_for(use_case: str, text: str, source: str) -> CriteriaSet:
    """Parse a criteria document meant for `use_case`; InvalidCriteria on any problem."""
    try:
        parsed = _parsed(text, source)
    except CriteriaError as exc:
        raise InvalidCriteria(str(exc)) from None
    if parsed.use_case != use_case:
        raise InvalidCriteria(
            f"{source}:1: use_case: the document is for {parsed.use_case!r}, not {use_case!r}"
        )
    return parsed


def apply_criteria(session: Session, use_case: str, text: str, author: str) -> Any:
    """Validate and store a new criteria version; returns the stored row."""
    parse_for(use_case, text, "criteria")
    return repository.add_criteria_version(session, use_case, text, author)


def sync_config_criteria(session: Session, info: UseCaseInfo) -> None:
    """Store the configuration's criteria as a new version when they differ from the latest."""
    if info.criteria_text is None:
        return
    latest = repository.latest_criteria(session, info.name)
    if latest is not None and latest.author == "config" and latest.text == info.criteria_text:
        return
    if latest is not None and latest.author != "config":
        return  # changed through the API or the CLI since: that version stays in force
    apply_criteria(session, info.name, info.criteria_text, "config")


def criteria_in_force(session: Session, info: UseCaseInfo) -> tuple[int | None, str | None]:
    """The criteria version and text a verdict uses, without writing anything.

    The configuration's criteria are stored as a version by the periodic evaluation
    (`sync_config_criteria`); until then a read judges by the configured text, version None.
    """
    latest = repository.latest_criteria(session, info.name)
    if info.criteria_text is not None and (latest is None or latest.author == "config"):
        if latest is None or latest.text != info.criteria_text:
            return None, info.criteria_text
    if latest is None:
        return None, None
    return latest.version, latest.text


def sync_all_config_criteria(session: Session, catalog: Catalog) -> None:
    """`sync_config_criteria` for every use case (at start-up and by the periodic evaluation)."""
    for name in catalog.names():
        sync_config_criteria(session, catalog.get(name))


def inline_criteria_text(use_case: str, document: Mapping[str, Any]) -> str:
    """YAML text for criteria written inline in switchover.yaml."""
    return yaml.safe_dump({"use_case": use_case, **document}, sort_keys=False)


def figures(session: Session, info: UseCaseInfo) -> dict[str, float]:
    """Use-case figures: declared (ops hours), measured (capacity) and projected (cost)."""
    values = dict(info.figures)
    capacity = repository.latest_capacity(session, info.name, info.candidate)
    if capacity is not None:
        values["capacity.rps_at_slo"] = capacity
    projection = cost_projection(session, info)
    for metric, value in (
        ("cost.monthly_primary_usd", projection.monthly_primary_usd),
        ("cost.monthly_candidate_usd", projection.monthly_candidate_usd),
        ("cost.monthly_savings_usd", projection.monthly_savings_usd),
    ):
        if value is not None:
            values[metric] = value
    return values


def load_data(
    session: Session, info: UseCaseInfo, criteria: CriteriaSet, raw: bool = False
) -> dict[str, CriterionData]:
    """Each criterion's evidence (from the score aggregates, or the raw scores) or figure."""
    data: dict[str, CriterionData] = {}
    known: dict[str, float] | None = None
    for criterion in criteria.criteria:
        if CATALOG[criterion.metric].kind == "figure":
            known = known if known is not None else figures(session, info)
            data[criterion.name] = CriterionData(figure=known.get(criterion.metric))
    per_pair = [c for c in criteria.criteria if CATALOG[c.metric].kind != "figure"]
    found_evidence = evidence.load(
        session, info.name, per_pair, read_raw=raw, candidate=info.candidate
    )
    for name, found in found_evidence.items():
        data[name] = CriterionData(evidence=found)
    for warning in criteria_warnings(info.situation(), criteria):
        if warning.never:
            data[warning.criterion] = CriterionData(never=warning.message)
    return data


# What latency criteria on imported pairs measured: the import's pace, not production load.
IMPORT_PACE = (
    "imported pairs: the candidate was measured at the import's pace ({pace}), "
    "not under production load"
)


def _read(
    result: CriterionResult,
    criterion: Criterion,
    pace: str | None,
    warnings: Mapping[str, CriterionWarning],
) -> CriterionRead:
    warning = warnings.get(result.name)
    note = result.note
    timed = CATALOG[result.metric].evaluator == "latency" and result.metric != "candidate.error"
    if pace is not None and timed and criterion.source != "live":
        note = "; ".join(part for part in (note, IMPORT_PACE.format(pace=pace)) if part)
    fields = {**result.__dict__, "note": note}
    return CriterionRead(
        label=CATALOG[result.metric].label,
        source=criterion.source,
        warning=warning.message if warning else None,
        **fields,
    )


def source_shares(session: Session, use_case: str) -> list[SourceShare]:
    """The use case's pairs by origin: live shadowing, and each import."""
    counts = repository.source_counts(session, use_case)
    total = sum(n for _, _, n in counts)
    return [
        SourceShare(
            source="import" if source == "import" else "live",
            import_id=import_id,
            pairs=n,
            share=n / total,
        )
        for source, import_id, n in counts
    ]


def _import_pace(session: Session, shares: Sequence[SourceShare]) -> str | None:
    """The rates imported pairs were asked at, in words; None without imported pairs."""
    rates = []
    for share in shares:
        if share.import_id is not None:
            row = repository.get_import(session, share.import_id)
            rates.append(f"{row.rate:g} req/s" if row and row.rate else "an unrecorded rate")
    return ", ".join(sorted(set(rates))) if rates else None


def evaluate(
    session: Session,
    info: UseCaseInfo,
    now: datetime | None = None,
    raw: bool = False,
) -> ReadinessRead:
    """Evaluate a use case's criteria in force; reads only, stores nothing.

    `raw` reads every sample instead of the score aggregates: the same verdict, slower.
    """
    now = now or datetime.now(UTC)
    version, text = criteria_in_force(session, info)
    count, first, last = repository.pair_window(session, info.name, info.candidate)
    window = Window(start=first, end=last)
    if text is None:
        return ReadinessRead(
            use_case=info.name,
            candidate=info.candidate,
            verdict="INSUFFICIENT_DATA",
            evaluated_at=now,
            criteria_version=None,
            pairs=count,
            window=window,
            criteria=[],
            reasons=["no success criteria are defined for this use case"],
            sources=source_shares(session, info.name),
        )
    source = f"criteria v{version}" if version is not None else f"{info.name} criteria"
    criteria = parse_for(info.name, text, source)
    hours = None
    if first is not None and last is not None and last > first:
        hours = (last - first).total_seconds() / 3600
    start = first.replace(tzinfo=UTC) if first and first.tzinfo is None else first
    warnings = {w.criterion: w for w in criteria_warnings(info.situation(), criteria)}
    recent = _recent_pace(session, info, first, last, now)
    decision = decide(
        criteria,
        load_data(session, info, criteria, raw),
        start,
        now,
        hours,
        previous=_previous_bounds(session, info, version),
        last_pair_at=_aware(last),
        recent=recent,
        pairs=count,
    )
    shares = source_shares(session, info.name)
    pace = _import_pace(session, shares)
    by_name = {c.name: c for c in criteria.criteria}
    return ReadinessRead(
        use_case=info.name,
        candidate=info.candidate,
        verdict=decision.verdict,
        evaluated_at=now,
        criteria_version=version,
        pairs=count,
        window=window,
        criteria=[_read(r, by_name[r.name], pace, warnings) for r in decision.criteria],
        reasons=decision.reasons,
        pairs_per_hour=recent.pairs_per_hour,
        idle_since=recent.idle_since,
        sources=shares,
    )


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment


def _recent_pace(
    session: Session,
    info: UseCaseInfo,
    first: datetime | None,
    last: datetime | None,
    now: datetime,
) -> Pace:
    """The arrival rate over the last hour of traffic (or all of it, when shorter)."""
    first, last = _aware(first), _aware(last)
    if first is None or last is None:
        return Pace(None)
    since = max(first, last - RECENT)
    recent = repository.count_pairs(
        session, info.name, since=since.replace(tzinfo=None), candidate=info.candidate
    )
    hours = (last - since).total_seconds() / 3600
    return pace(recent, hours, last, now)


def _previous_bounds(session: Session, info: UseCaseInfo, version: int | None) -> dict[str, Bounds]:
    """Each criterion's interval at the candidate's last stored look with the same version.

    The running intersection goes on from there, so a stored PASS or FAIL does not flip back;
    a new criteria version starts afresh (README: where evidence restarts).
    """
    if version is None:
        return {}
    stored = repository.list_decisions(session, info.name, 1, info.candidate)
    if not stored or stored[0].body.get("criteria_version") != version:
        return {}
    found = {}
    for row in stored[0].body.get("criteria", []):
        low, high = row.get("ci_low"), row.get("ci_high")
        found[row["name"]] = Bounds(
            low=-math.inf if low is None else float(low),
            high=math.inf if high is None else float(high),
            n=int(row.get("n") or 0),
        )
    return found


def _standing(
    session: Session, info: UseCaseInfo, readiness: ReadinessRead, compared: bool
) -> tuple[Standing, CostProjection | None, float | None]:
    """What the ranking compares; the cost only when there is something to compare it with
    (it reads every pair's arrival, which a one-candidate verdict never needed)."""
    projection = cost_projection(session, info) if compared else None
    standing = Standing(
        candidate=info.candidate,
        verdict=readiness.verdict,
        criteria=readiness.criteria,
        monthly_cost_usd=projection.monthly_candidate_usd if projection else None,
    )
    capacity = repository.latest_capacity(session, info.name, info.candidate) if compared else None
    return standing, projection, capacity


def evaluate_candidates(
    session: Session, info: UseCaseInfo, now: datetime | None = None, raw: bool = False
) -> list[ReadinessRead]:
    """Every candidate's verdict, ranked; each body's top level is its own candidate's.

    In configuration order; every body carries the same `candidates` list.
    """
    now = now or datetime.now(UTC)
    infos = info.candidates
    found = [evaluate(session, one, now, raw) for one in infos]
    compared = len(infos) > 1
    measured = [_standing(session, one, r, compared) for one, r in zip(infos, found, strict=True)]
    places = rank([standing for standing, _, _ in measured])
    listed = [
        CandidateReadinessRead(
            candidate=readiness.candidate,
            model=one.candidate_model,
            verdict=readiness.verdict,
            rank=place.rank,
            pairs=readiness.pairs,
            criteria=readiness.criteria,
            reasons=[f"rank {place.rank}: {place.summary}", *readiness.reasons],
            monthly_cost_usd=projection.monthly_candidate_usd if projection else None,
            monthly_savings_usd=projection.monthly_savings_usd if projection else None,
            capacity_rps=capacity,
        )
        for one, readiness, place, (_, projection, capacity) in zip(
            infos, found, places, measured, strict=True
        )
    ]
    return [readiness.model_copy(update={"candidates": listed}) for readiness in found]


def evaluate_one(
    session: Session, info: UseCaseInfo, now: datetime | None = None, raw: bool = False
) -> ReadinessRead:
    """`info`'s candidate's verdict with every candidate's rank (`candidates`); stores nothing."""
    for readiness in evaluate_candidates(session, info, now, raw):
        if readiness.candidate == info.candidate:
            return readiness
    raise AssertionError("a use case's candidates include its own")


def evaluate_and_store(
    session: Session, info: UseCaseInfo, now: datetime | None = None
) -> ReadinessRead:
    """The periodic evaluation: store the configured criteria if new, judge, store the verdicts.

    One stored verdict per candidate; returned: `info`'s candidate's.
    """
    sync_config_criteria(session, info)
    found = evaluate_candidates(session, info, now)
    version = repository.latest_criteria(session, info.name)
    for readiness in found:
        repository.add_decision(
            session,
            Decision(
                use_case=info.name,
                candidate=readiness.candidate,
                criteria_version_id=version.id if version else None,
                verdict=readiness.verdict,
                evaluated_at=readiness.evaluated_at,
                pairs=readiness.pairs,
                body=readiness.model_dump(mode="json"),
            ),
        )
    return next(r for r in found if r.candidate == info.candidate)


def current(
    session: Session, catalog: Catalog, name: str, candidate: str | None = None
) -> ReadinessRead:
    """A read's verdict: the latest stored one while fresh, else evaluated now (not stored).

    `candidate` chooses whose fields are at the top level (default: the lead candidate).
    """
    info = catalog.get(name).for_candidate(candidate)
    stored = repository.list_decisions(session, name, 1, info.candidate)
    now = datetime.now(UTC)
    if stored:
        at = stored[0].evaluated_at
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at
        if (now - at).total_seconds() < catalog.fresh_for_s:
            return ReadinessRead.model_validate(stored[0].body)
    return evaluate_one(session, info, now)


def use_case_summary(session: Session, info: UseCaseInfo) -> UseCaseRead:
    """A use case's configuration and evidence counts."""
    count, _, last = repository.pair_window(session, info.name)
    version = repository.latest_criteria(session, info.name)
    return UseCaseRead(
        name=info.name,
        mode=info.mode,
        sample_rate=info.sample_rate,
        primary_model=info.primary_model,
        candidate_model=info.candidate_model,
        pairs=count,
        last_pair_at=last,
        criteria_version=version.version if version else None,
        candidate=info.candidate,
        candidates=info.order,
    )
