"""A use case's cost projection from its stored traffic and measured capacity."""

from __future__ import annotations

from sqlalchemy.orm import Session

from criteria.cost.model import CostProjection, TrafficInputs, project
from criteria.usecases import UseCaseInfo
from storage import aggregates, repository


def cost_projection(session: Session, info: UseCaseInfo) -> CostProjection:
    """The monthly cost figures from observed traffic, the deployment and measured capacity."""
    count, first, last = repository.pair_window(session, info.name, info.candidate)
    total, priced, busiest_bucket = repository.traffic_summary(session, info.name, info.candidate)
    window = (last - first).total_seconds() if first and last else 0.0
    # the busiest 10-minute bucket's mean rate (a shorter window: the whole window's)
    bucket_s = float(aggregates.BUCKET_S)
    peak = busiest_bucket / min(bucket_s, window) if busiest_bucket and window > 0 else None
    traffic = TrafficInputs(
        mirrored_pairs=count,
        window_seconds=window,
        sample_rate=info.sample_rate,
        primary_cost_usd=total,
        priced_pairs=priced,
        peak_mirrored_rps=peak,
    )
    capacity = repository.latest_capacity(session, info.name, info.candidate)
    return project(info.deployment, traffic, capacity, info.headroom)
