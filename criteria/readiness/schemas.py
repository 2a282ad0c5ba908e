"""Response bodies of the readiness API (SPEC §7); field names are the contract."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from criteria.api import Timestamp


class Window(BaseModel):
    """When the evidence was collected."""

    start: Timestamp | None
    end: Timestamp | None


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
    warning: str | None = Field(
        None, description="why this criterion cannot get data as configured, if it cannot"
    )
    source: Literal["live", "import", "any"] = Field(
        "any", description="the evidence the criterion judges: live shadowing, imports or both"
    )


class SourceShare(BaseModel):
    """How many of a use case's pairs came from live shadowing, or from one import."""

    source: Literal["live", "import"]
    import_id: str | None = Field(description="which import (None for live pairs)")
    pairs: int
    share: float = Field(description="of all the use case's pairs")


class CandidateReadinessRead(BaseModel):
    """One candidate's verdict beside the others' (the `candidates` of a readiness body)."""

    candidate: str
    model: str | None = None
    verdict: Literal["GO", "NO_GO", "INSUFFICIENT_DATA"]
    rank: int = Field(description="1 is the best; the rule is in the README")
    pairs: int
    criteria: list[CriterionRead]
    reasons: list[str] = Field(description="the ranking's reason first, then the verdict's")
    monthly_cost_usd: float | None = Field(None, description="cost.monthly_candidate_usd")
    monthly_savings_usd: float | None = None
    capacity_rps: float | None = Field(None, description="capacity.rps_at_slo")


class ReadinessRead(BaseModel):
    """A use case's verdict: the top-level fields are one candidate's (the lead by default)."""

    use_case: str
    candidate: str = "default"
    verdict: Literal["GO", "NO_GO", "INSUFFICIENT_DATA"]
    evaluated_at: Timestamp
    criteria_version: int | None
    pairs: int
    window: Window
    criteria: list[CriterionRead]
    reasons: list[str]
    pairs_per_hour: float | None = Field(
        None, description="pairs per hour over the last hour of traffic; None once it stopped"
    )
    idle_since: Timestamp | None = Field(None, description="the last pair, once traffic stopped")
    candidates: list[CandidateReadinessRead] = Field(
        default_factory=list, description="every candidate's verdict and rank"
    )
    sources: list[SourceShare] = Field(
        default_factory=list, description="the evidence's origin: live pairs and each import"
    )


class UseCaseRead(BaseModel):
    """A configured use case and how much evidence it has."""

    name: str
    mode: str
    sample_rate: float
    primary_model: str
    candidate_model: str = Field(description="the lead candidate's model")
    pairs: int = Field(description="stored pairs, every candidate's")
    last_pair_at: Timestamp | None
    criteria_version: int | None
    candidate: str = Field("default", description="the lead candidate")
    candidates: list[str] = Field(default_factory=list, description="in configuration order")


class CriteriaVersionRead(BaseModel):
    """A stored version of a use case's criteria."""

    use_case: str
    version: int
    author: str
    created_at: Timestamp
    text: str
    criteria: dict[str, Any] = Field(description="the parsed document")


class DecisionRead(BaseModel):
    """A stored verdict."""

    candidate: str = "default"
    verdict: str
    evaluated_at: Timestamp
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
    candidate_name: str = "default"
    created_at: Timestamp
    stream: bool
    status: str
    feature: str | None
    request: Any
    primary: AnswerRead
    candidate: AnswerRead
    scores: dict[str, float | None]


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
    candidate: str | None = Field(None, description="None: every candidate's pairs")
    metrics: list[MetricDistributionRead]


class TimelinePointRead(BaseModel):
    """A metric's figures over one time bucket."""

    start: Timestamp
    end: Timestamp
    n: int
    mean: float
    p50: float
    p90: float


class TimelineRead(BaseModel):
    """A metric over time, in equal time buckets over the use case's pairs."""

    use_case: str
    candidate: str | None = Field(None, description="None: every candidate's pairs")
    metric: str
    label: str
    points: list[TimelinePointRead]
