"""Response and request bodies of the rollout API (SPEC §12); field names are the contract."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from criteria.api import Timestamp


class RolloutEventRead(BaseModel):
    """An audited rollout change, or a verdict change."""

    at: Timestamp
    kind: Literal["advance", "rollback", "auto_rollback", "verdict_change"]
    actor: str
    candidate: str | None = Field(description="the candidate it concerned (None: the lead one)")
    from_percent: float
    to_percent: float
    verdict: str | None = Field(description="the verdict at the time")
    previous_verdict: str | None
    reason: str | None
    forced: bool
    automatic: bool


class FallbackRead(BaseModel):
    """Live requests routed to the candidate over the fallback window, by outcome."""

    window_start: Timestamp
    routed: int = Field(description="live requests sent to the candidate")
    served_by_candidate: int
    fallbacks: int = Field(description="answered by the primary after the candidate failed")
    broken_streams: int = Field(description="candidate streams cut after their first byte")
    rate: float | None = Field(description="(fallbacks + broken streams) / routed")
    limit: float
    by_outcome: dict[str, int]


class RolloutRead(BaseModel):
    """A use case's live rollout: where it stands, where it may go, and how it got there."""

    use_case: str
    candidate: str = Field(description="the candidate that takes (or last took) live traffic")
    mode: Literal["shadow", "canary", "candidate"]
    percent: float = Field(description="share of live traffic answered by the candidate")
    steps: list[float]
    next_percent: float | None
    since: Timestamp | None = Field(description="when the current step began (None: config)")
    next_allowed_at: Timestamp | None = Field(description="earliest unforced advance")
    min_step_seconds: float
    verdict: str | None = Field(description="the latest stored verdict of `candidate`")
    fallback: FallbackRead
    history: list[RolloutEventRead] = Field(description="newest first")


class RolloutChange(BaseModel):
    """`POST /api/v1/use-cases/{use_case}/rollout`."""

    action: Literal["advance", "rollback"]
    force: bool = Field(False, description="advance without GO or before min_step_duration")
    reason: str | None = Field(None, max_length=2000, description="required when forcing")
    candidate: str | None = Field(
        None,
        max_length=64,
        description="the candidate to advance (default: the live one, else the lead one); "
        "another than the live one only from 0 %",
    )
