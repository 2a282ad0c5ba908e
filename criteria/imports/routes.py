"""`GET /api/v1/imports` (viewer). Thin: parse, call the service, return."""

from __future__ import annotations

from fastapi import APIRouter

from criteria.access.auth import Viewer
from criteria.api import DbSession, ErrorRead
from criteria.imports import service
from criteria.imports.schemas import ImportRead


def create_router() -> APIRouter:
    """The imports routes under /api/v1."""
    router = APIRouter(
        prefix="/api/v1",
        tags=["imports"],
        responses={
            401: {"model": ErrorRead, "description": "no or unknown token"},
            403: {"model": ErrorRead, "description": "the token's role is not enough"},
        },
    )

    @router.get("/imports", response_model=list[ImportRead])
    def imports(_: Viewer, session: DbSession, use_case: str | None = None) -> list[ImportRead]:
        """Imports of captured traffic, newest first, with their counts and state."""
        return service.list_imports(session, use_case)

    return router
