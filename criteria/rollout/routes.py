"""The use cases and their rollout under /api/v1 (SPEC §7, §12). Thin: parse, call, return."""

from __future__ import annotations

from fastapi import APIRouter

from criteria.access.auth import Admin, Viewer
from criteria.api import ERRORS, DbSession, ErrorRead
from criteria.readiness.schemas import UseCaseRead
from criteria.rollout import service as rollout_service
from criteria.rollout.schemas import RolloutChange, RolloutRead
from criteria.usecases import Catalog


def create_router(catalog: Catalog) -> APIRouter:
    """The use-case list (with each live mode) and the rollout routes."""
    router = APIRouter(prefix="/api/v1", tags=["rollout"], responses=ERRORS)

    @router.get("/use-cases", response_model=list[UseCaseRead])
    def use_cases(_: Viewer, session: DbSession) -> list[UseCaseRead]:
        """Configured use cases with mode, sample rate and pair counts."""
        return [rollout_service.summary(session, catalog.get(n)) for n in catalog.names()]

    @router.get("/use-cases/{use_case}/rollout", response_model=RolloutRead)
    def rollout(use_case: str, _: Viewer, session: DbSession) -> RolloutRead:
        """Live mode and percentage, the steps, the fallback rate and the audited history."""
        return rollout_service.status(session, catalog.get(use_case))

    @router.post(
        "/use-cases/{use_case}/rollout",
        response_model=RolloutRead,
        responses={
            404: {"model": ErrorRead, "description": "no such use case or candidate"},
            409: {
                "model": ErrorRead,
                "description": "not GO, too early, nothing to change, or another candidate live",
            },
            422: {"model": ErrorRead, "description": "force without a reason"},
        },
    )
    def change_rollout(
        use_case: str, body: RolloutChange, actor: Admin, session: DbSession
    ) -> RolloutRead:
        """Advance one step (only on GO, or forced with a reason) or roll back to 0 %."""
        return rollout_service.change(
            session,
            catalog.get(use_case),
            body.action,
            actor,
            body.force,
            body.reason,
            candidate=body.candidate,
        )

    return router
