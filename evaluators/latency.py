"""Latency and reliability figures, copied from the pair so criteria read only scores."""

from __future__ import annotations

from collections.abc import Sequence

from evaluators.base import Values, each
from evaluators.pair import PairView


class LatencyEvaluator:
    """`*.latency_ms`, `*.ttft_ms`, `candidate.tpot_ms`, `candidate.error`, `latency.ratio`."""

    name = "latency"
    metrics = (
        "primary.latency_ms",
        "candidate.latency_ms",
        "primary.ttft_ms",
        "candidate.ttft_ms",
        "candidate.tpot_ms",
        "candidate.error",
        "latency.ratio",
    )

    def score(self, pairs: Sequence[PairView]) -> list[Values]:
        """The measured figures of each pair."""
        return each(pairs, self._one)

    @staticmethod
    def _one(pair: PairView) -> Values:
        primary, candidate = pair.primary, pair.candidate
        figures = {
            "primary.latency_ms": primary.latency_ms,
            "candidate.latency_ms": candidate.latency_ms,
            "primary.ttft_ms": primary.ttft_ms,
            "candidate.ttft_ms": candidate.ttft_ms,
            "candidate.tpot_ms": candidate.tpot_ms,
            # A timeout is an error and also a latency equal to the timeout: both are kept.
            "candidate.error": 1.0 if candidate.failed else 0.0,
        }
        if primary.latency_ms and candidate.latency_ms is not None:
            figures["latency.ratio"] = candidate.latency_ms / primary.latency_ms
        return {metric: float(value) for metric, value in figures.items() if value is not None}
