"""SQLAlchemy models: use cases, request pairs, noise re-asks, scores, criteria, decisions.

A pair comes from live shadowing (`source` "live") or from an import of captured traffic
(`source` "import", `import_id` naming the import); an imported pair's primary side is the
recorded answer, whose latency is NULL ("not measured") when the capture did not record it.

No column ever holds an `Authorization` header or an API key: the shadow job never carries them.
Text columns hold what the use case's `privacy:` lets through (redacted, or nothing at all); the
`*_sha256` columns hold the hash of that same text, so identical requests and answers can still
be told apart when the text itself is not stored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Timezone-aware now, the only clock the models use."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSON,
    }


class UseCase(Base):
    """A feature whose traffic is mirrored; created when its first pair is stored."""

    __tablename__ = "use_cases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RequestPair(Base):
    """One request answered by the primary and replayed to one candidate (`candidate_name`)."""

    __tablename__ = "request_pairs"
    __table_args__ = (
        Index("ix_request_pairs_use_case_created_at", "use_case", "created_at"),
        Index("ix_request_pairs_use_case_source", "use_case", "source", "import_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    use_case: Mapped[str] = mapped_column(ForeignKey("use_cases.name", ondelete="CASCADE"))
    candidate_name: Mapped[str] = mapped_column(
        String(64), default="default", server_default="default", comment="which candidate answered"
    )
    source: Mapped[str] = mapped_column(
        String(20), default="live", server_default="live", comment="live or import"
    )
    import_id: Mapped[str | None] = mapped_column(
        ForeignKey("imports.id", ondelete="SET NULL"), comment="the import an imported pair is of"
    )
    endpoint: Mapped[str] = mapped_column(String(40))
    feature: Mapped[str | None] = mapped_column(
        String(200), comment="feature tag from X-Switchover-Feature, for criteria segments"
    )
    stream: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(comment="when the proxy received the request")
    completed_at: Mapped[datetime] = mapped_column(default=utcnow)
    request_body: Mapped[str | None] = mapped_column(Text)
    request_sha256: Mapped[str] = mapped_column(String(64))
    text_stored: Mapped[bool] = mapped_column(
        Boolean,
        default=True,
        server_default=true(),
        comment="false under `store_text: false`: no request, answer or error text, only hashes",
    )

    primary_model: Mapped[str] = mapped_column(String(200))
    primary_request_id: Mapped[str | None] = mapped_column(String(200))
    primary_status_code: Mapped[int] = mapped_column(Integer)
    primary_text: Mapped[str | None] = mapped_column(Text)
    primary_sha256: Mapped[str | None] = mapped_column(String(64))
    primary_tool_calls: Mapped[list[Any] | None] = mapped_column(JSON)
    primary_finish_reason: Mapped[str | None] = mapped_column(String(40))
    primary_latency_ms: Mapped[float | None] = mapped_column(
        Float, comment="NULL: not measured (an import that did not record it)"
    )
    primary_ttft_ms: Mapped[float | None] = mapped_column(Float)
    primary_tpot_ms: Mapped[float | None] = mapped_column(Float)
    primary_prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    primary_completion_tokens: Mapped[int | None] = mapped_column(Integer)

    candidate_model: Mapped[str] = mapped_column(String(200))
    candidate_status_code: Mapped[int | None] = mapped_column(Integer)
    candidate_text: Mapped[str | None] = mapped_column(Text)
    candidate_sha256: Mapped[str | None] = mapped_column(String(64))
    candidate_tool_calls: Mapped[list[Any] | None] = mapped_column(JSON)
    candidate_finish_reason: Mapped[str | None] = mapped_column(String(40))
    candidate_latency_ms: Mapped[float] = mapped_column(Float)
    candidate_ttft_ms: Mapped[float | None] = mapped_column(Float)
    candidate_tpot_ms: Mapped[float | None] = mapped_column(Float)
    candidate_prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    candidate_completion_tokens: Mapped[int | None] = mapped_column(Integer)
    candidate_error: Mapped[str | None] = mapped_column(Text)
    candidate_error_kind: Mapped[str | None] = mapped_column(String(40))


class Import(Base):
    """One import of captured traffic (`switchover import`), with its counts.

    Its id is fixed by the use case, the format and the files' contents, so importing the
    same files again finds it (and continues it) instead of starting another.
    """

    __tablename__ = "imports"
    __table_args__ = (Index("ix_imports_use_case_started_at", "use_case", "started_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    use_case: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(40))
    files: Mapped[list[Any]] = mapped_column(JSON, comment="file names, as given")
    state: Mapped[str] = mapped_column(String(20), comment="running, interrupted or complete")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    rate: Mapped[float | None] = mapped_column(
        Float, comment="requests/s the candidate was asked at (its latency is at this pace)"
    )
    read: Mapped[int] = mapped_column(Integer, default=0, comment="records read")
    stored: Mapped[int] = mapped_column(Integer, default=0, comment="records taken in")
    skipped: Mapped[int] = mapped_column(Integer, default=0, comment="bad or errored records")
    failed: Mapped[int] = mapped_column(
        Integer, default=0, comment="of the skipped: records the capture marks as errors"
    )
    duplicates: Mapped[int] = mapped_column(
        Integer, default=0, comment="records already imported (same record key)"
    )
    errors: Mapped[list[Any]] = mapped_column(
        JSON, comment="the first problems, `file:line: reason`"
    )


class NoiseReask(Base):
    """The primary asked the same request again: how much the API disagrees with itself."""

    __tablename__ = "noise_reasks"

    pair_id: Mapped[str] = mapped_column(
        ForeignKey("request_pairs.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    text: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    tool_calls: Mapped[list[Any] | None] = mapped_column(JSON)
    finish_reason: Mapped[str | None] = mapped_column(String(40))
    latency_ms: Mapped[float] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    tpot_ms: Mapped[float | None] = mapped_column(Float)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    error_kind: Mapped[str | None] = mapped_column(String(40))


class Score(Base):
    """One metric of one pair; `value` is NULL and `error` set when the evaluator failed."""

    __tablename__ = "scores"
    __table_args__ = (UniqueConstraint("pair_id", "metric"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pair_id: Mapped[str] = mapped_column(
        ForeignKey("request_pairs.id", ondelete="CASCADE"), index=True
    )
    metric: Mapped[str] = mapped_column(String(100), index=True)
    value: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CriteriaVersion(Base):
    """Every change of a use case's criteria is kept, with who made it and when."""

    __tablename__ = "criteria_versions"
    __table_args__ = (UniqueConstraint("use_case", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    use_case: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Decision(Base):
    """A stored verdict with the per-criterion figures it was based on."""

    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_use_case_evaluated_at", "use_case", "evaluated_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    use_case: Mapped[str] = mapped_column(String(200))
    candidate: Mapped[str] = mapped_column(String(64), default="default", server_default="default")
    criteria_version_id: Mapped[int | None] = mapped_column(ForeignKey("criteria_versions.id"))
    verdict: Mapped[str] = mapped_column(String(30))
    evaluated_at: Mapped[datetime] = mapped_column(default=utcnow)
    pairs: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)


class ApiToken(Base):
    """A bearer token of the readiness API; only its SHA-256 is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CapacityRun(Base):
    """A replay load test of a use case's candidate (`switchover replay`)."""

    __tablename__ = "capacity_runs"
    __table_args__ = (Index("ix_capacity_runs_use_case_started_at", "use_case", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    use_case: Mapped[str] = mapped_column(String(200))
    candidate: Mapped[str] = mapped_column(String(64), default="default", server_default="default")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime] = mapped_column(default=utcnow)
    target: Mapped[str] = mapped_column(String(500), comment="candidate base URL and model")
    slo_quantile: Mapped[float] = mapped_column(Float)
    slo_ms: Mapped[float] = mapped_column(Float)
    error_limit: Mapped[float] = mapped_column(Float)
    rps_at_slo: Mapped[float | None] = mapped_column(Float)
    steps: Mapped[list[Any]] = mapped_column(JSON)


class RolloutState(Base):
    """A use case's live percentage once a rollout change was made (absent: the config's mode)."""

    __tablename__ = "rollout_states"

    use_case: Mapped[str] = mapped_column(String(200), primary_key=True)
    percent: Mapped[float] = mapped_column(Float, comment="share of live traffic to the candidate")
    since: Mapped[datetime] = mapped_column(default=utcnow, comment="when this step began")
    candidate: Mapped[str | None] = mapped_column(
        String(64), comment="the candidate taking live traffic; NULL: the lead one"
    )


class RolloutEvent(Base):
    """An audited rollout change or verdict change; `notified_at` is set once the webhook went."""

    __tablename__ = "rollout_events"
    __table_args__ = (Index("ix_rollout_events_use_case_at", "use_case", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    use_case: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(
        String(30), comment="advance, rollback, auto_rollback or verdict_change"
    )
    actor: Mapped[str] = mapped_column(String(200), comment="token name, or `switchover`")
    candidate: Mapped[str | None] = mapped_column(
        String(64), comment="the candidate the change moved; NULL: the lead one"
    )
    from_percent: Mapped[float] = mapped_column(Float)
    to_percent: Mapped[float] = mapped_column(Float)
    verdict: Mapped[str | None] = mapped_column(String(30), comment="the verdict at the time")
    previous_verdict: Mapped[str | None] = mapped_column(String(30))
    reason: Mapped[str | None] = mapped_column(Text)
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    automatic: Mapped[bool] = mapped_column(Boolean, default=False)
    notified_at: Mapped[datetime | None] = mapped_column()


class LiveCount(Base):
    """Live requests routed to the candidate per minute and outcome, summed over all proxies."""

    __tablename__ = "live_counts"

    use_case: Mapped[str] = mapped_column(String(200), primary_key=True)
    minute: Mapped[datetime] = mapped_column(primary_key=True)
    outcome: Mapped[str] = mapped_column(
        String(40), primary_key=True, comment="candidate, broken or fallback_<reason>"
    )
    count: Mapped[int] = mapped_column(Integer)


class ScoreAggregate(Base):
    """Sums of one score series over 10 minutes of pair arrivals (see `storage.aggregates`)."""

    __tablename__ = "score_aggregates"

    use_case: Mapped[str] = mapped_column(String(200), primary_key=True)
    candidate: Mapped[str] = mapped_column(String(64), primary_key=True, default="default")
    series: Mapped[str] = mapped_column(String(220), primary_key=True, comment="metric or derived")
    feature: Mapped[str] = mapped_column(String(200), primary_key=True, comment="'' when untagged")
    bucket: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, comment="10-minute periods since 1970 of the pairs' arrival"
    )
    n: Mapped[int] = mapped_column(Integer)
    nonzero: Mapped[int] = mapped_column(Integer)
    total: Mapped[float] = mapped_column(Float)
    total_sq: Mapped[float] = mapped_column(Float)


class ScoreHistogram(Base):
    """How many values of one score series fall in one bin of the 3-significant-digit grid."""

    __tablename__ = "score_histograms"

    use_case: Mapped[str] = mapped_column(String(200), primary_key=True)
    candidate: Mapped[str] = mapped_column(String(64), primary_key=True, default="default")
    series: Mapped[str] = mapped_column(String(220), primary_key=True)
    feature: Mapped[str] = mapped_column(String(200), primary_key=True)
    bin: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


class DeadLetter(Base):
    """An accepted shadow job that did not become a stored pair, and why (never forgotten).

    `kind` `scoring_not_queued` marks a stored pair whose scoring could not be queued (the
    broker was down): the periodic sweep queues it and removes the row.
    """

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pair_id: Mapped[str] = mapped_column(String(36), index=True)
    use_case: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40), index=True)
    error: Mapped[str | None] = mapped_column(Text, comment="the reason, without request text")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
