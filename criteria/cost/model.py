"""Total cost of ownership: what the API costs per month, what the self-hosted model would.

Every figure comes with the inputs it was computed from, so a stakeholder can retrace it.
A figure whose inputs are not measured yet is None (NO_DATA for criteria), never zero.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, Field

HOURS_PER_MONTH = 730.0  # 365 * 24 / 12
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
WEEKS_PER_MONTH = 52.0 / 12.0


@dataclass(frozen=True)
class Deployment:
    """How the self-hosted model is (or would be) deployed, from the configuration."""

    gpu: str
    gpu_count: int
    hourly_usd: float
    replicas: int
    ops_hours_per_week: float
    engineer_hourly_usd: float


@dataclass(frozen=True)
class TrafficInputs:
    """What was observed of the live traffic through the proxy."""

    mirrored_pairs: int
    window_seconds: float
    sample_rate: float
    primary_cost_usd: float | None  # summed over the mirrored pairs that have a price
    priced_pairs: int
    peak_mirrored_rps: float | None  # mean rate of the busiest 10 minutes of mirrored pairs


class CostPoint(BaseModel):
    """Both monthly bills at one monthly traffic (a point of the break-even chart)."""

    requests_per_month: float
    primary_usd: float
    candidate_usd: float


class CostProjection(BaseModel):
    """The monthly projection, with its inputs."""

    monthly_primary_usd: float | None
    monthly_candidate_usd: float | None
    monthly_savings_usd: float | None
    candidate_usd_per_request: float | None
    primary_usd_per_request: float | None
    monthly_requests: float | None
    peak_rps: float | None
    replicas_needed: int | None
    break_even_requests_per_month: float | None
    inputs: dict[str, Any]
    missing: list[str]
    curve: list[CostPoint] = Field(
        default_factory=list,
        description="both monthly bills as traffic grows, to twice the larger of the traffic "
        "seen and the break-even (empty until both are known)",
    )


def monthly_requests(traffic: TrafficInputs) -> float | None:
    """All requests (not only the mirrored sample) scaled to 30.4 days."""
    if traffic.window_seconds <= 0 or traffic.sample_rate <= 0 or traffic.mirrored_pairs == 0:
        return None
    per_second = traffic.mirrored_pairs / traffic.sample_rate / traffic.window_seconds
    return per_second * SECONDS_PER_MONTH


def replicas_for(rps: float, capacity_per_replica: float, headroom: float) -> int:
    """Replicas needed to carry `rps` with `headroom` (0.3 = 30% spare) at a given capacity."""
    return max(1, math.ceil(rps * (1 + headroom) / capacity_per_replica))


def candidate_monthly_usd(deployment: Deployment, replicas: int) -> float:
    """GPUs x hourly price x replicas for a month, plus the people running it."""
    gpus = deployment.gpu_count * deployment.hourly_usd * replicas * HOURS_PER_MONTH
    people = deployment.ops_hours_per_week * WEEKS_PER_MONTH * deployment.engineer_hourly_usd
    return gpus + people


def self_hosted_monthly_usd(
    deployment: Deployment,
    capacity_per_replica: float,
    headroom: float,
    requests_per_month: float,
    peak_ratio: float = 1.0,
) -> float:
    """The self-hosted bill at a monthly traffic: the replicas its peak needs, and the people.

    `peak_ratio` is the observed peak rate over the average one: replicas are sized for the
    peak, as `project` sizes them for the traffic seen. The one cost curve: the break-even
    figure and the dashboard's chart both come from it.
    """
    peak_rps = requests_per_month / SECONDS_PER_MONTH * peak_ratio
    replicas = replicas_for(peak_rps, capacity_per_replica, headroom)
    return candidate_monthly_usd(deployment, replicas)


def _replica_step(capacity_per_replica: float, headroom: float, peak_ratio: float) -> float:
    """Monthly requests one more replica carries."""
    return capacity_per_replica * SECONDS_PER_MONTH / ((1 + headroom) * peak_ratio)


def break_even(
    deployment: Deployment,
    capacity_per_replica: float,
    headroom: float,
    usd_per_request: float,
    peak_ratio: float = 1.0,
) -> float | None:
    """Requests per month from which self-hosting is cheaper than the API.

    The self-hosted cost is a step function of traffic (`self_hosted_monthly_usd`: one more
    replica per capacity step); the answer is the smallest traffic at which the API's cost
    reaches the self-hosted cost of the replicas that traffic needs.
    """
    if usd_per_request <= 0:
        return None
    step = _replica_step(capacity_per_replica, headroom, peak_ratio)
    gpu_month = deployment.gpu_count * deployment.hourly_usd * HOURS_PER_MONTH
    if usd_per_request * step <= gpu_month:
        return None  # each further replica costs more than the API traffic it would carry
    for replicas in range(1, 100_000):
        cost = candidate_monthly_usd(deployment, replicas)
        lowest = step * (replicas - 1)
        highest = step * replicas
        traffic = max(cost / usd_per_request, lowest)
        if traffic <= highest:
            return traffic
    return None


def cost_curve(
    deployment: Deployment,
    capacity_per_replica: float,
    headroom: float,
    usd_per_request: float,
    reach: float,
    peak_ratio: float = 1.0,
    max_steps: int = 200,
) -> list[CostPoint]:
    """Both bills from no traffic to `reach`, with a point either side of each replica step.

    The self-hosted line is `self_hosted_monthly_usd`, so it crosses the API's where
    `break_even` says.
    """
    step = _replica_step(capacity_per_replica, headroom, peak_ratio)
    xs = {0.0, reach}
    boundaries = int(reach // step) if step > 0 else 0
    if boundaries <= max_steps:
        for k in range(1, boundaries + 1):
            xs.update({step * k, step * k * (1 + 1e-9)})
    else:
        xs.update(reach * i / (2 * max_steps) for i in range(2 * max_steps + 1))
    found = break_even(deployment, capacity_per_replica, headroom, usd_per_request, peak_ratio)
    if found is not None and found <= reach:
        xs.add(found)
    return [
        CostPoint(
            requests_per_month=x,
            primary_usd=x * usd_per_request,
            candidate_usd=self_hosted_monthly_usd(
                deployment, capacity_per_replica, headroom, x, peak_ratio
            ),
        )
        for x in sorted(xs)
    ]


def project(
    deployment: Deployment | None,
    traffic: TrafficInputs,
    rps_at_slo: float | None,
    headroom: float,
) -> CostProjection:
    """The monthly figures of SPEC §4 from the deployment, the traffic and measured capacity."""
    missing = []
    requests = monthly_requests(traffic)
    per_request = None
    if traffic.primary_cost_usd is not None and traffic.priced_pairs > 0:
        per_request = traffic.primary_cost_usd / traffic.priced_pairs
    monthly_primary = per_request * requests if per_request is not None and requests else None
    if monthly_primary is None:
        missing.append("cost.monthly_primary_usd: no priced traffic observed yet")
    peak = None
    if traffic.peak_mirrored_rps is not None and traffic.sample_rate > 0:
        peak = traffic.peak_mirrored_rps / traffic.sample_rate
    monthly_candidate = replicas = per_request_candidate = breakeven = None
    curve: list[CostPoint] = []
    if deployment is None:
        missing.append("cost.monthly_candidate_usd: the candidate upstream has no `deployment`")
    elif rps_at_slo is None or rps_at_slo <= 0:
        missing.append(
            "cost.monthly_candidate_usd: capacity not measured yet (run `switchover replay`)"
        )
    elif peak is None:
        missing.append("cost.monthly_candidate_usd: no traffic observed yet")
    else:
        per_replica = rps_at_slo / deployment.replicas
        replicas = replicas_for(peak, per_replica, headroom)
        monthly_candidate = candidate_monthly_usd(deployment, replicas)
        per_request_candidate = deployment.gpu_count * deployment.hourly_usd / (per_replica * 3600)
        # the peak over the average rate: the curve sizes replicas like the figure above
        ratio = max(1.0, peak / (requests / SECONDS_PER_MONTH)) if requests else 1.0
        if per_request is not None:
            breakeven = break_even(deployment, per_replica, headroom, per_request, ratio)
            reach = 2 * max(requests or 0.0, breakeven or monthly_candidate / per_request)
            curve = cost_curve(deployment, per_replica, headroom, per_request, reach, ratio)
    savings = None
    if monthly_primary is not None and monthly_candidate is not None:
        savings = monthly_primary - monthly_candidate
    else:
        missing.append("cost.monthly_savings_usd: needs both monthly figures")
    inputs = {
        "deployment": asdict(deployment) if deployment else None,
        "traffic": asdict(traffic),
        "rps_at_slo": rps_at_slo,
        "headroom": headroom,
        "hours_per_month": HOURS_PER_MONTH,
        "weeks_per_month": WEEKS_PER_MONTH,
    }
    return CostProjection(
        monthly_primary_usd=monthly_primary,
        monthly_candidate_usd=monthly_candidate,
        monthly_savings_usd=savings,
        candidate_usd_per_request=per_request_candidate,
        primary_usd_per_request=per_request,
        monthly_requests=requests,
        peak_rps=peak,
        replicas_needed=replicas,
        break_even_requests_per_month=breakeven,
        inputs=inputs,
        missing=missing,
        curve=curve,
    )
