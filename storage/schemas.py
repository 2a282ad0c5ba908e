"""What the upper layers hand to the repository."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel
from sqlalchemy import String

from storage.models import RequestPair


def _fits(column: str) -> AfterValidator:
    """Cut a value to its column's length: a too-long tag or model name is data, not an outage.

    PostgreSQL refuses a value longer than its `VARCHAR(n)` where SQLite stores it whole;
    cutting it here stores the same pair on both.
    """
    column_type = RequestPair.__table__.c[column].type
    if not isinstance(column_type, String) or column_type.length is None:
        raise TypeError(f"{column} is not a column of limited length")
    length = column_type.length

    def cut(value: str | None) -> str | None:
        return value[:length] if value is not None else None

    return AfterValidator(cut)


Feature = Annotated[str | None, _fits("feature")]
ModelName = Annotated[str, _fits("primary_model")]
RequestId = Annotated[str | None, _fits("primary_request_id")]
FinishReason = Annotated[str | None, _fits("primary_finish_reason")]
ErrorKind = Annotated[str | None, _fits("candidate_error_kind")]


class AnswerFields(BaseModel):
    """An answer of one side, as measured by the caller."""

    status_code: int | None = None
    text: str | None = None
    tool_calls: list[Any] | None = None
    sha256: str | None = None
    finish_reason: FinishReason = None
    # None only for a recorded primary answer whose latency was not measured (an import)
    latency_ms: float | None
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    error_kind: ErrorKind = None


class PairCreate(BaseModel):
    """A complete request pair, ready to be written once."""

    id: str
    use_case: str
    endpoint: str
    feature: Feature = None
    stream: bool
    created_at: datetime
    request_body: str | None
    request_sha256: str
    text_stored: bool = True
    primary_model: ModelName
    primary_request_id: RequestId
    primary: AnswerFields
    candidate_model: ModelName
    candidate: AnswerFields
    candidate_name: str = "default"
    noise: AnswerFields | None = None
    source: str = "live"
    import_id: str | None = None

    @property
    def status(self) -> str:
        """`ok`, or the kind of candidate failure (`timeout`, `connection`, `http_status`, …)."""
        return self.candidate.error_kind or "ok"
