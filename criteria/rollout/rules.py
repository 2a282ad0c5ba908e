"""Gradual cut-over (SPEC §12): the rollout plan and the pure rules that move along it.

A use case's live percentage is the share of its production requests answered by the
candidate: 0 is `shadow`, 100 is `candidate`, anything between is `canary`. The rules here take
figures and return decisions, so they are tested without a database; `criteria.rollout.service`
loads the figures and stores the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from criteria.errors import ReadinessError
from criteria.readiness.schema import parse_duration

Mode = Literal["shadow", "canary", "candidate"]
Action = Literal["advance", "rollback"]
EventKind = Literal["advance", "rollback", "auto_rollback", "verdict_change"]
# Live outcomes the proxy counts per request routed to the candidate; `fallback_*` were answered
# by the primary after the candidate failed, `broken` is a stream cut after its first byte.
CANDIDATE = "candidate"
BROKEN = "broken"
FALLBACK_PREFIX = "fallback_"


class RolloutConfig(BaseModel):
    """The `rollout:` section of a use case: its steps, their pace and the safety limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    candidate: str | None = Field(
        None, description="the candidate this rollout moves; default the first one listed"
    )
    steps: tuple[float, ...] = Field(
        (1, 5, 25, 50, 100), description="live percentages, increasing, ending at 100"
    )
    min_step_duration: timedelta = Field(
        timedelta(hours=1), description="least time at a step before the next advance"
    )
    initial_percent: float | None = Field(
        None, gt=0, lt=100, description="where `mode: canary` starts; default the first step"
    )
    first_byte_timeout_s: float = Field(
        10, gt=0, description="the candidate's first byte must come by then, else the primary"
    )
    reverse_sample_rate: float | None = Field(
        None, ge=0, le=1, description="candidate answers re-asked of the primary; default shadow"
    )
    max_fallback_rate: float = Field(0.05, ge=0, le=1)
    fallback_window: timedelta = Field(timedelta(minutes=5))
    min_fallback_requests: int = Field(
        20, ge=1, description="live candidate requests in the window before the limit applies"
    )
    webhook_url_env: str | None = Field(
        None, description="env var holding a Slack-compatible incoming webhook URL"
    )

    @field_validator("min_step_duration", "fallback_window", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return value if isinstance(value, timedelta) else parse_duration(value)

    @model_validator(mode="after")
    def _increasing_to_100(self) -> RolloutConfig:
        steps = self.steps
        if not steps or any(not 0 < s <= 100 for s in steps):
            raise ValueError("steps are percentages in (0, 100]")
        if any(b <= a for a, b in pairwise(steps)):
            raise ValueError("steps must increase")
        if steps[-1] != 100:
            raise ValueError("the last step must be 100 (all traffic to the candidate)")
        return self


def mode_of(percent: float) -> Mode:
    """`shadow` at 0 %, `candidate` at 100 %, `canary` between."""
    if percent <= 0:
        return "shadow"
    return "candidate" if percent >= 100 else "canary"


def starting_percent(mode: str, plan: RolloutConfig) -> float:
    """The live percentage the configured mode stands for, before any rollout change."""
    if mode == "candidate":
        return 100.0
    if mode == "canary":
        return plan.initial_percent if plan.initial_percent is not None else plan.steps[0]
    return 0.0


class RolloutRefused(ReadinessError):
    """The rollout cannot change now; the message says why (verdict, pace, end of the plan)."""

    status = 409


class ReasonRequired(ReadinessError):
    """A forced change needs a reason for the audit trail."""

    status = 422


@dataclass(frozen=True)
class Change:
    """An allowed rollout change."""

    from_percent: float
    to_percent: float
    forced: bool


def plan_change(
    plan: RolloutConfig,
    action: Action,
    percent: float,
    since: datetime | None,
    verdict: str,
    now: datetime,
    force: bool = False,
    reason: str | None = None,
) -> Change:
    """Where an `advance` or a `rollback` takes the use case, or RolloutRefused.

    An advance moves one step up, only on GO and after `min_step_duration` at the current
    step, unless forced with a reason. A rollback returns to 0 % at any time.
    """
    if force and not (reason and reason.strip()):
        raise ReasonRequired("a forced change needs a reason")
    if action == "rollback":
        if percent <= 0:
            raise RolloutRefused("nothing to roll back: the use case is in shadow mode")
        return Change(percent, 0.0, forced=force)
    higher = [step for step in plan.steps if step > percent]
    if not higher:
        raise RolloutRefused("the rollout is complete: all traffic goes to the candidate")
    if not force:
        if verdict != "GO":
            raise RolloutRefused(
                f"the verdict is {verdict}; an advance needs GO (or force with a reason)"
            )
        if since is not None and now < since + plan.min_step_duration:
            allowed = since + plan.min_step_duration
            raise RolloutRefused(
                f"the current step began at {since.isoformat()}; the next step is allowed from "
                f"{allowed.isoformat()} (min_step_duration)"
            )
    return Change(percent, higher[0], forced=force)


@dataclass(frozen=True)
class FallbackStats:
    """Live requests routed to the candidate over a window, by outcome."""

    counts: dict[str, int]

    @property
    def routed(self) -> int:
        """Requests the proxy sent to the candidate."""
        return sum(self.counts.values())

    @property
    def failed(self) -> int:
        """Of those, answered by the primary instead, or cut off mid-stream."""
        return sum(n for kind, n in self.counts.items() if kind != CANDIDATE)

    @property
    def rate(self) -> float | None:
        """The share that the candidate did not answer in full."""
        return self.failed / self.routed if self.routed else None


def rollback_reason(
    plan: RolloutConfig,
    percent: float,
    critical_failures: list[str],
    fallback: FallbackStats,
) -> str | None:
    """Why a live rollout must go back to 0 % now, or None when it may stay."""
    if percent <= 0:
        return None
    if critical_failures:
        return "critical criterion failing: " + ", ".join(repr(n) for n in critical_failures)
    rate = fallback.rate
    if (
        rate is not None
        and fallback.routed >= plan.min_fallback_requests
        and rate > plan.max_fallback_rate
    ):
        return (
            f"live fallback rate {rate:.1%} ({fallback.failed} of {fallback.routed}) is over "
            f"the limit of {plan.max_fallback_rate:.1%}"
        )
    return None
