"""What the upper layers hand to the repository."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class AnswerFields(BaseModel):
    """An answer of one side, as measured by the caller."""

    status_code: int | None = None
    text: str | None = None
    tool_calls: list[Any] | None = None
    sha256: str | None = None
    finish_reason: str | None = None
    latency_ms: float
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    error_kind: str | None = None


class PairCreate(BaseModel):
    """A complete request pair, ready to be written once."""

    id: str
    use_case: str
    endpoint: str
    feature: str | None = None
    stream: bool
    created_at: datetime
    request_body: str | None
    request_sha256: str
    text_stored: bool = True
    primary_model: str
    primary_request_id: str | None
    primary: AnswerFields
    candidate_model: str
    candidate: AnswerFields
    noise: AnswerFields | None = None

    @property
    def status(self) -> str:
        """`ok`, or the kind of candidate failure (`timeout`, `connection`, `http_status`, …)."""
        return self.candidate.error_kind or "ok"
