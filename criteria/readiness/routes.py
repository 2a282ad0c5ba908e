"""The readiness API under /api/v1 (SPEC §7). Thin: parse, call the service, return."""

from __future__ import annotations

import json
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from criteria.access.auth import Admin, Viewer
from criteria.api import ERRORS, CandidateQuery, DbSession, ErrorRead
from criteria.errors import InvalidCriteria, NoCriteria
from criteria.readiness import service, summaries
from criteria.readiness.schemas import (
    AnswerRead,
    CriteriaVersionRead,
    DecisionRead,
    DistributionsRead,
    PairRead,
    ReadinessRead,
    TimelineRead,
)
from criteria.usecases import Catalog
from evaluators.catalog import CATALOG, unknown_metric
from storage import repository
from storage.models import RequestPair, Score

GATE_STATUS = {"GO": 200, "NO_GO": 409, "INSUFFICIENT_DATA": 425}


async def _body(request: Request) -> bytes:
    return await request.body()


RawBody = Annotated[bytes, Depends(_body)]


def create_router(catalog: Catalog) -> APIRouter:
    """The readiness routes under /api/v1 over the configured use cases."""
    router = APIRouter(prefix="/api/v1", tags=["readiness"], responses=ERRORS)

    @router.get("/readiness", response_model=list[ReadinessRead])
    def readiness_all(_: Viewer, session: DbSession) -> list[ReadinessRead]:
        """Every use case's current verdict."""
        return [service.current(session, catalog, n) for n in catalog.names()]

    @router.get("/readiness/{use_case}", response_model=ReadinessRead)
    def readiness(
        use_case: str, _: Viewer, session: DbSession, candidate: CandidateQuery = None
    ) -> ReadinessRead:
        """A use case's current verdict with per-criterion figures, and every candidate's rank."""
        return service.current(session, catalog, use_case, candidate)

    @router.get("/readiness/{use_case}/history", response_model=list[DecisionRead])
    def history(
        use_case: str,
        _: Viewer,
        session: DbSession,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        candidate: CandidateQuery = None,
    ) -> list[DecisionRead]:
        """Stored verdicts of a candidate (default the lead), newest first."""
        info = catalog.get(use_case).for_candidate(candidate)
        return [
            DecisionRead(
                candidate=row.candidate,
                verdict=row.verdict,
                evaluated_at=row.evaluated_at,
                criteria_version=row.body.get("criteria_version"),
                pairs=row.pairs,
                criteria=row.body.get("criteria", []),
                reasons=row.body.get("reasons", []),
            )
            for row in repository.list_decisions(session, use_case, limit, info.candidate)
        ]

    gate_responses: dict[int | str, dict[str, Any]] = {
        409: {"model": ReadinessRead, "description": "NO_GO"},
        425: {"model": ReadinessRead, "description": "INSUFFICIENT_DATA"},
    }

    @router.get("/gate/{use_case}", response_model=ReadinessRead, responses=gate_responses)
    def gate(
        use_case: str, _: Viewer, session: DbSession, candidate: CandidateQuery = None
    ) -> JSONResponse:
        """200 on GO, 409 on NO_GO, 425 on INSUFFICIENT_DATA; the body is the readiness."""
        result = service.current(session, catalog, use_case, candidate)
        return JSONResponse(result.model_dump(mode="json"), status_code=GATE_STATUS[result.verdict])

    @router.post("/gate/{use_case}", response_model=ReadinessRead, responses=gate_responses)
    def gate_webhook(
        use_case: str, _: Viewer, session: DbSession, candidate: CandidateQuery = None
    ) -> JSONResponse:
        """The gate for webhooks that POST (Flagger's confirm-promotion); the payload is ignored."""
        return gate(use_case, _, session, candidate)

    @router.get("/use-cases/{use_case}/criteria", response_model=CriteriaVersionRead)
    def get_criteria(use_case: str, _: Viewer, session: DbSession) -> CriteriaVersionRead:
        """The criteria in force."""
        info = catalog.get(use_case)
        service.sync_config_criteria(session, info)
        row = repository.latest_criteria(session, use_case)
        if row is None:
            raise NoCriteria(f"use case {use_case!r} has no criteria yet")
        return _version(row)

    @router.put(
        "/use-cases/{use_case}/criteria",
        response_model=CriteriaVersionRead,
        responses={422: {"model": ErrorRead, "description": "invalid criteria (line and reason)"}},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/yaml": {"schema": {"type": "string"}},
                    "application/json": {"schema": {"type": "object"}},
                },
            }
        },
    )
    def put_criteria(
        use_case: str, request: Request, raw: RawBody, author: Admin, session: DbSession
    ) -> CriteriaVersionRead:
        """Replace the criteria (YAML or JSON body); a new version is stored."""
        catalog.get(use_case)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidCriteria("body:1: the criteria document is not UTF-8 text") from None
        if "json" in request.headers.get("content-type", ""):
            try:
                text = _json_to_yaml(text)
            except ValueError as exc:
                raise InvalidCriteria(f"body:1: not valid JSON: {exc}") from None
        return _version(service.apply_criteria(session, use_case, text, author))

    @router.get("/pairs", response_model=list[PairRead])
    def pairs(
        _: Viewer,
        session: DbSession,
        use_case: str | None = None,
        worst_by: Annotated[str | None, Query(description="a metric name")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        candidate: Annotated[str | None, Query(description="only this candidate's pairs")] = None,
    ) -> list[PairRead]:
        """Request pairs with their scores; `worst_by` puts the worst values first."""
        if use_case is not None:
            _known(use_case, candidate)
        if worst_by is not None and worst_by not in CATALOG:
            raise InvalidCriteria(f"worst_by: {unknown_metric(worst_by)}")
        return _pairs(session, use_case, worst_by, limit, candidate)

    @router.get("/use-cases/{use_case}/distributions", response_model=DistributionsRead)
    def distributions(
        use_case: str,
        _: Viewer,
        session: DbSession,
        metric: Annotated[list[str], Query(min_length=1, max_length=20)],
        bins: Annotated[int, Query(ge=1, le=200)] = 30,
        shared: Annotated[bool, Query(description="the same bin edges for every metric")] = True,
        candidate: Annotated[str | None, Query(description="only this candidate's pairs")] = None,
    ) -> DistributionsRead:
        """Histograms and quantiles of per-pair scores, for charts."""
        _known(use_case, candidate)
        for name in metric:
            _check_pair_metric("metric", name)
        return summaries.distributions(session, use_case, metric, bins, shared, candidate)

    @router.get("/use-cases/{use_case}/timeline", response_model=TimelineRead)
    def timeline(
        use_case: str,
        _: Viewer,
        session: DbSession,
        metric: str,
        buckets: Annotated[int, Query(ge=1, le=500)] = 40,
        candidate: Annotated[str | None, Query(description="only this candidate's pairs")] = None,
    ) -> TimelineRead:
        """A per-pair score's median and 90th percentile over time."""
        _known(use_case, candidate)
        _check_pair_metric("metric", metric)
        return summaries.timeline(session, use_case, metric, buckets, candidate)

    def _known(use_case: str, candidate: str | None) -> None:
        """UnknownUseCase or UnknownCandidate (404) unless both are configured."""
        info = catalog.get(use_case)
        if candidate is not None:
            info.for_candidate(candidate)

    return router


def _check_pair_metric(field: str, name: str) -> None:
    if name not in CATALOG:
        raise InvalidCriteria(f"{field}: {unknown_metric(name)}")
    if CATALOG[name].kind != "pair":
        raise InvalidCriteria(f"{field}: {name!r} is a use-case figure, not a per-pair score")


def _json_to_yaml(text: str) -> str:
    return yaml.safe_dump(json.loads(text), sort_keys=False)


def _version(row: Any) -> CriteriaVersionRead:
    return CriteriaVersionRead(
        use_case=row.use_case,
        version=row.version,
        author=row.author,
        created_at=row.created_at,
        text=row.text,
        criteria=yaml.safe_load(row.text),
    )


def _pairs(
    session: Session,
    use_case: str | None,
    worst_by: str | None,
    limit: int,
    candidate: str | None = None,
) -> list[PairRead]:
    query = select(RequestPair)
    if use_case is not None:
        query = query.where(RequestPair.use_case == use_case)
    if candidate is not None:
        query = query.where(RequestPair.candidate_name == candidate)
    if worst_by is not None:
        value = Score.value.asc() if CATALOG[worst_by].better == "higher" else Score.value.desc()
        query = (
            query.join(Score, (Score.pair_id == RequestPair.id) & (Score.metric == worst_by))
            .where(Score.value.is_not(None))
            .order_by(value)
        )
    else:
        query = query.order_by(RequestPair.created_at.desc())
    rows = session.scalars(query.limit(limit)).all()
    scores: dict[str, dict[str, float | None]] = {row.id: {} for row in rows}
    if rows:
        found = session.execute(
            select(Score.pair_id, Score.metric, Score.value).where(Score.pair_id.in_(list(scores)))
        )
        for pair_id, metric, score in found:
            scores[pair_id][metric] = score
    return [_pair_read(row, scores[row.id]) for row in rows]


def _pair_read(row: RequestPair, scores: dict[str, float | None]) -> PairRead:
    try:
        request = json.loads(row.request_body) if row.request_body else None
    except (ValueError, RecursionError):
        request = row.request_body
    return PairRead(
        id=row.id,
        use_case=row.use_case,
        candidate_name=row.candidate_name,
        created_at=row.created_at,
        stream=row.stream,
        status=row.status,
        feature=row.feature,
        request=request,
        primary=AnswerRead(
            text=row.primary_text,
            tool_calls=row.primary_tool_calls,
            latency_ms=row.primary_latency_ms,
            ttft_ms=row.primary_ttft_ms,
            completion_tokens=row.primary_completion_tokens,
        ),
        candidate=AnswerRead(
            text=row.candidate_text,
            tool_calls=row.candidate_tool_calls,
            latency_ms=row.candidate_latency_ms,
            ttft_ms=row.candidate_ttft_ms,
            completion_tokens=row.candidate_completion_tokens,
            error=row.candidate_error,
        ),
        scores=scores,
    )
