"""Loading the evidence of a use case, evaluating its criteria, storing the verdict."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import yaml
from sqlalchemy.orm import Session

from criteria.cost.model import CostProjection, Deployment, TrafficInputs, project
from criteria.errors import InvalidCriteria, UnknownUseCase
from criteria.readiness import evidence
from criteria.readiness.engine import Bounds, CriterionData, CriterionResult, decide
from criteria.readiness.schema import CriteriaError, CriteriaSet, parse_criteria
from criteria.readiness.schemas import CriterionRead, ReadinessRead, UseCaseRead, Window
from criteria.rollout.rules import RolloutConfig
from evaluators.catalog import CATALOG
from storage import repository
from storage.models import Decision


@dataclass(frozen=True)
class UseCaseInfo:
    """What the readiness service knows of a configured use case (handed in by `shadow`)."""

    name: str
    mode: str
    sample_rate: float
    primary_model: str
    candidate_model: str
    criteria_text: str | None = None
    figures: Mapping[str, float] = field(default_factory=dict)
    deployment: Deployment | None = None
    headroom: float = 0.3
    noise_rate: float | None = None  # None: not known (tests, tools); 0: never re-asked
    rollout: RolloutConfig | None = None


class Catalog:
    """The configured use cases, by name.

    `fresh_for_s` is the evaluation period: a stored verdict younger than that is what a read
    returns; an older one is re-evaluated for the read without being stored.
    """

    def __init__(self, use_cases: Sequence[UseCaseInfo], fresh_for_s: float = 60.0) -> None:
        self._by_name = {info.name: info for info in use_cases}
        self.fresh_for_s = fresh_for_s

    def names(self) -> list[str]:
        """Use case names in configuration order."""
        return list(self._by_name)

    def get(self, name: str) -> UseCaseInfo:
        """A use case, or UnknownUseCase."""
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownUseCase(f"no use case {name!r} is configured") from None


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


def cost_projection(session: Session, info: UseCaseInfo) -> CostProjection:
    """The monthly cost figures from observed traffic, the deployment and measured capacity."""
    count, first, last = repository.pair_window(session, info.name)
    total, priced, busiest_minute = repository.traffic_summary(session, info.name)
    window = (last - first).total_seconds() if first and last else 0.0
    peak = busiest_minute / min(60.0, window) if busiest_minute and window > 0 else None
    traffic = TrafficInputs(
        mirrored_pairs=count,
        window_seconds=window,
        sample_rate=info.sample_rate,
        primary_cost_usd=total,
        priced_pairs=priced,
        peak_mirrored_rps=peak,
    )
    capacity = repository.latest_capacity(session, info.name)
    return project(info.deployment, traffic, capacity, info.headroom)


def figures(session: Session, info: UseCaseInfo) -> dict[str, float]:
    """Use-case figures: declared (ops hours), measured (capacity) and projected (cost)."""
    values = dict(info.figures)
    capacity = repository.latest_capacity(session, info.name)
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
    for name, found in evidence.load(session, info.name, per_pair, read_raw=raw).items():
        data[name] = CriterionData(evidence=found)
    for criterion in per_pair:
        if criterion.mode == "noise_adjusted" and info.noise_rate == 0:
            data[criterion.name] = CriterionData(
                never="no noise re-asks are made (the use case's noise_rate is 0): "
                "this criterion cannot decide until it is raised"
            )
    return data


def _read(result: CriterionResult) -> CriterionRead:
    return CriterionRead(label=CATALOG[result.metric].label, **result.__dict__)


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
    count, first, last = repository.pair_window(session, info.name)
    window = Window(start=first, end=last)
    if text is None:
        return ReadinessRead(
            use_case=info.name,
            verdict="INSUFFICIENT_DATA",
            evaluated_at=now,
            criteria_version=None,
            pairs=count,
            window=window,
            criteria=[],
            reasons=["no success criteria are defined for this use case"],
        )
    source = f"criteria v{version}" if version is not None else f"{info.name} criteria"
    criteria = parse_for(info.name, text, source)
    hours = None
    if first is not None and last is not None and last > first:
        hours = (last - first).total_seconds() / 3600
    start = first.replace(tzinfo=UTC) if first and first.tzinfo is None else first
    decision = decide(
        criteria,
        load_data(session, info, criteria, raw),
        start,
        now,
        hours,
        previous=_previous_bounds(session, info.name, version),
        last_pair_at=last.replace(tzinfo=UTC) if last and last.tzinfo is None else last,
    )
    return ReadinessRead(
        use_case=info.name,
        verdict=decision.verdict,
        evaluated_at=now,
        criteria_version=version,
        pairs=count,
        window=window,
        criteria=[_read(r) for r in decision.criteria],
        reasons=decision.reasons,
    )


def _previous_bounds(session: Session, use_case: str, version: int | None) -> dict[str, Bounds]:
    """Each criterion's interval at the last stored look with the same criteria version.

    The running intersection goes on from there, so a stored PASS or FAIL does not flip back;
    a new criteria version starts afresh (README: where evidence restarts).
    """
    if version is None:
        return {}
    stored = repository.list_decisions(session, use_case, 1)
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


def evaluate_and_store(
    session: Session, info: UseCaseInfo, now: datetime | None = None
) -> ReadinessRead:
    """The periodic evaluation: store the configured criteria if new, judge, store the verdict."""
    sync_config_criteria(session, info)
    readiness = evaluate(session, info, now)
    version = repository.latest_criteria(session, info.name)
    repository.add_decision(
        session,
        Decision(
            use_case=info.name,
            criteria_version_id=version.id if version else None,
            verdict=readiness.verdict,
            evaluated_at=readiness.evaluated_at,
            pairs=readiness.pairs,
            body=readiness.model_dump(mode="json"),
        ),
    )
    return readiness


def current(session: Session, catalog: Catalog, name: str) -> ReadinessRead:
    """A read's verdict: the latest stored one while fresh, else evaluated now (not stored)."""
    info = catalog.get(name)
    stored = repository.list_decisions(session, name, 1)
    now = datetime.now(UTC)
    if stored:
        at = stored[0].evaluated_at
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at
        if (now - at).total_seconds() < catalog.fresh_for_s:
            return ReadinessRead.model_validate(stored[0].body)
    return evaluate(session, info, now)


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
    )
