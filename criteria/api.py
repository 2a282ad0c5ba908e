"""What every criteria router shares: the request's session, error bodies and their handler."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel
from sqlalchemy.orm import Session

from criteria.errors import ReadinessError
from storage.db import get_db_session

DbSession = Annotated[Session, Depends(get_db_session)]
CandidateQuery = Annotated[
    str | None, Query(description="a candidate's name; default the lead candidate")
]


def _with_zone(moment: datetime) -> datetime:
    # the databases hand back naive datetimes; every one stored is UTC
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


# Every timestamp of the API carries its zone (`...+00:00`), however it was stored.
Timestamp = Annotated[datetime, AfterValidator(_with_zone)]


class ErrorRead(BaseModel):
    """An error body."""

    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorRead, "description": "no or unknown token"},
    403: {"model": ErrorRead, "description": "the token's role is not enough"},
    404: {"model": ErrorRead, "description": "unknown use case"},
}


async def render_error(_: Request, exc: Exception) -> JSONResponse:
    """A domain error as `{"detail": ...}` with its status (registered by the app)."""
    status = exc.status if isinstance(exc, ReadinessError) else 500
    return JSONResponse({"detail": str(exc)}, status_code=status)
