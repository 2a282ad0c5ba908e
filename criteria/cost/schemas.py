"""Response bodies of the capacity and cost API; field names are the contract."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from criteria.api import Timestamp
from criteria.cost.model import CostProjection


class CapacityRunRead(BaseModel):
    """A stored replay run."""

    id: int
    use_case: str
    candidate: str = "default"
    started_at: Timestamp
    finished_at: Timestamp
    target: str
    slo_quantile: float
    slo_ms: float
    error_limit: float
    rps_at_slo: float | None
    steps: list[dict[str, Any]]


class CostRead(CostProjection):
    """The monthly cost projection of a use case's candidate with every input it used."""

    use_case: str
    candidate: str = "default"
