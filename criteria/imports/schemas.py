"""Response bodies of `GET /api/v1/imports`."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class ImportRead(BaseModel):
    """One import with its counts and state."""

    id: str
    use_case: str
    format: str
    files: list[str]
    state: Literal["running", "interrupted", "complete"]
    started_at: datetime
    updated_at: datetime
    rate: float | None = Field(description="requests/s the candidate was asked at")
    read: int = Field(description="records read from the files")
    stored: int = Field(description="records taken in, each to become a pair")
    skipped: int = Field(description="records left out: malformed, failed or unsupported")
    failed: int = Field(description="of the skipped: those the capture marks as errors")
    duplicates: int = Field(description="records already imported (same record key)")
    mirrored: int = Field(description="pairs stored with the candidate's answer")
    scored: int = Field(description="of the mirrored: pairs with scores")
    errors: list[str] = Field(description="the first problems, `file:line: reason`")
