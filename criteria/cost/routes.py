"""Capacity runs and the cost projection under /api/v1. Thin: parse, call, return."""

from __future__ import annotations

from fastapi import APIRouter

from criteria.access.auth import Viewer
from criteria.api import ERRORS, CandidateQuery, DbSession
from criteria.cost.schemas import CapacityRunRead, CostRead
from criteria.cost.service import cost_projection
from criteria.usecases import Catalog
from storage import repository


def create_router(catalog: Catalog) -> APIRouter:
    """The capacity and cost routes of the configured use cases."""
    router = APIRouter(prefix="/api/v1", tags=["cost"], responses=ERRORS)

    @router.get("/use-cases/{use_case}/capacity", response_model=list[CapacityRunRead])
    def capacity(
        use_case: str, _: Viewer, session: DbSession, candidate: CandidateQuery = None
    ) -> list[CapacityRunRead]:
        """Replay runs (`switchover replay`), newest first; `candidate`: only that one's."""
        info = catalog.get(use_case)
        if candidate is not None:
            info.for_candidate(candidate)  # UnknownCandidate (404) unless configured
        return [
            CapacityRunRead.model_validate(run, from_attributes=True)
            for run in repository.list_capacity_runs(session, use_case, candidate=candidate)
        ]

    @router.get("/use-cases/{use_case}/cost", response_model=CostRead)
    def cost(
        use_case: str, _: Viewer, session: DbSession, candidate: CandidateQuery = None
    ) -> CostRead:
        """Monthly API vs self-hosted cost, savings and break-even, with the inputs used."""
        info = catalog.get(use_case).for_candidate(candidate)
        projection = cost_projection(session, info)
        return CostRead(use_case=use_case, candidate=info.candidate, **projection.model_dump())

    return router
