"""Response bodies of the readiness API (SPEC §7); field names are the contract."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from criteria.cost.model import CostProjection

Role = Literal["viewer", "admin"]


class Window(BaseModel):
    """When the evidence was collected."""

    start: datetime | None
    end: datetime | None


class CriterionRead(BaseModel):
    """One criterion's verdict and figures."""

    name: str
    metric: str
    label: str
    stat: str | None
    mode: str
    op: str | None
    critical: bool
    verdict: Literal["PASS", "FAIL", "INCONCLUSIVE", "NO_DATA"]
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    threshold: float | None
    n: int
    needed_n: int | None
    needed_low: int | None = None
    note: str = ""


class ReadinessRead(BaseModel):
    """A use case's verdict."""

    use_case: str
    verdict: Literal["GO", "NO_GO", "INSUFFICIENT_DATA"]
    evaluated_at: datetime
    criteria_version: int | None
    pairs: int
    window: Window
    criteria: list[CriterionRead]
    reasons: list[str]


class UseCaseRead(BaseModel):
    """A configured use case and how much evidence it has."""

    name: str
    mode: str
    sample_rate: float
    primary_model: str
    candidate_model: str
    pairs: int
    last_pair_at: datetime | None
    criteria_version: int | None


class CriteriaVersionRead(BaseModel):
    """A stored version of a use case's criteria."""

    use_case: str
    version: int
    author: str
    created_at: datetime
    text: str
    criteria: dict[str, Any] = Field(description="the parsed document")


class DecisionRead(BaseModel):
    """A stored verdict."""

    verdict: str
    evaluated_at: datetime
    criteria_version: int | None
    pairs: int
    criteria: list[dict[str, Any]]
    reasons: list[str]


class AnswerRead(BaseModel):
    """One side's answer of a pair."""

    text: str | None
    tool_calls: list[Any] | None
    latency_ms: float | None
    ttft_ms: float | None
    completion_tokens: int | None
    error: str | None = None


class PairRead(BaseModel):
    """A request pair with its scores, for review."""

    id: str
    use_case: str
    created_at: datetime
    stream: bool
    status: str
    feature: str | None
    request: Any
    primary: AnswerRead
    candidate: AnswerRead
    scores: dict[str, float | None]


class ErrorRead(BaseModel):
    """An error body."""

    detail: str


class CapacityRunRead(BaseModel):
    """A stored replay run."""

    id: int
    use_case: str
    started_at: datetime
    finished_at: datetime
    target: str
    slo_quantile: float
    slo_ms: float
    error_limit: float
    rps_at_slo: float | None
    steps: list[dict[str, Any]]


class CostRead(CostProjection):
    """The monthly cost projection of a use case with every input it used."""

    use_case: str


class MetricDistributionRead(BaseModel):
    """One metric's per-pair scores of a use case: figures and a histogram."""

    metric: str
    label: str
    better: Literal["higher", "lower"]
    binary: bool = Field(description="0/1 scores: `mean` is the proportion of ones")
    n: int
    mean: float | None
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    min: float | None
    max: float | None
    edges: list[float] = Field(description="histogram bin edges, one more than `counts`")
    counts: list[int]
    overflow: int = Field(description="scores above the last edge (the long tail)")


class DistributionsRead(BaseModel):
    """Distributions of some metrics of a use case, for charts."""

    use_case: str
    metrics: list[MetricDistributionRead]


class TimelinePointRead(BaseModel):
    """A metric's figures over one time bucket."""

    start: datetime
    end: datetime
    n: int
    mean: float
    p50: float
    p90: float


class TimelineRead(BaseModel):
    """A metric over time, in equal time buckets over the use case's pairs."""

    use_case: str
    metric: str
    label: str
    points: list[TimelinePointRead]


class RolloutEventRead(BaseModel):
    """An audited rollout change, or a verdict change."""

    at: datetime
    kind: Literal["advance", "rollback", "auto_rollback", "verdict_change"]
    actor: str
    from_percent: float
    to_percent: float
    verdict: str | None = Field(description="the verdict at the time")
    previous_verdict: str | None
    reason: str | None
    forced: bool
    automatic: bool


class FallbackRead(BaseModel):
    """Live requests routed to the candidate over the fallback window, by outcome."""

    window_start: datetime
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
    mode: Literal["shadow", "canary", "candidate"]
    percent: float = Field(description="share of live traffic answered by the candidate")
    steps: list[float]
    next_percent: float | None
    since: datetime | None = Field(description="when the current step began (None: config)")
    next_allowed_at: datetime | None = Field(description="earliest unforced advance")
    min_step_seconds: float
    verdict: str | None = Field(description="the latest stored verdict")
    fallback: FallbackRead
    history: list[RolloutEventRead] = Field(description="newest first")


class RolloutChange(BaseModel):
    """`POST /api/v1/use-cases/{use_case}/rollout`."""

    action: Literal["advance", "rollback"]
    force: bool = Field(False, description="advance without GO or before min_step_duration")
    reason: str | None = Field(None, max_length=2000, description="required when forcing")
