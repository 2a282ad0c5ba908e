"""The metric catalog (SPEC §4): every metric's name, the evaluator producing it, which way is
better, and its value range. The one list of metric names: the registry, the criteria and the
API read it from here.

Per-pair metrics are rows of the `scores` table; use-case figures are single numbers that
something measured or someone declared (cost projections, capacity, ops hours).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from typing import Literal

Direction = Literal["higher", "lower"]


@dataclass(frozen=True)
class Metric:
    """What criteria need to know about a metric."""

    name: str
    label: str
    better: Direction
    kind: Literal["pair", "figure"] = "pair"
    low: float | None = None
    high: float | None = None
    evaluator: str | None = None

    @property
    def bounded(self) -> bool:
        """Whether the value has a known range (needed for a confidence sequence on its mean)."""
        return self.low is not None and self.high is not None

    @property
    def binary(self) -> bool:
        """0/1 metrics, whose mean is a proportion."""
        return self.low == 0 and self.high == 1 and self.name in BINARY


BINARY = frozenset(
    {"candidate.error", "quality.exact_match", "quality.json_valid", "quality.refusal"}
)


def _by(evaluator: str, *metrics: Metric) -> list[Metric]:
    return [replace(metric, evaluator=evaluator) for metric in metrics]


_METRICS = [
    *_by(
        "latency",
        Metric("primary.latency_ms", "API latency (ms)", "lower", low=0),
        Metric("candidate.latency_ms", "self-hosted latency (ms)", "lower", low=0),
        Metric("primary.ttft_ms", "API time to first token (ms)", "lower", low=0),
        Metric("candidate.ttft_ms", "self-hosted time to first token (ms)", "lower", low=0),
        Metric("candidate.tpot_ms", "self-hosted time per output token (ms)", "lower", low=0),
        Metric("candidate.error", "self-hosted error rate", "lower", low=0, high=1),
        Metric("latency.ratio", "latency, self-hosted / API", "lower", low=0),
    ),
    *_by(
        "semantic_similarity",
        Metric("quality.semantic_similarity", "answer similarity", "higher", low=-1, high=1),
        Metric("noise.semantic_similarity", "API agreeing with itself", "higher", low=-1, high=1),
    ),
    *_by(
        "overlap",
        Metric("quality.rouge_l", "ROUGE-L overlap", "higher", low=0, high=1),
        Metric("quality.bleu", "BLEU overlap", "higher", low=0, high=1),
    ),
    *_by("exact_match", Metric("quality.exact_match", "exact match", "higher", low=0, high=1)),
    *_by(
        "json",
        Metric("quality.json_valid", "valid JSON", "higher", low=0, high=1),
        Metric("quality.json_match", "JSON fields reproduced", "higher", low=0, high=1),
    ),
    *_by(
        "tool_calls",
        Metric("quality.tool_call_match", "same tool call", "higher", low=0, high=1),
    ),
    *_by(
        "refusal",
        Metric("quality.refusal", "refusals where the API answered", "lower", low=0, high=1),
    ),
    *_by(
        "length_ratio",
        Metric("quality.length_ratio", "answer length, self-hosted / API", "higher", low=0),
    ),
    *_by("primary_cost", Metric("cost.primary_usd", "API cost per request (USD)", "lower", low=0)),
    *_by(
        "candidate_cost",
        Metric("cost.candidate_usd", "self-hosted cost per request (USD)", "lower", low=0),
    ),
    *_by("judge", Metric("quality.judge_score", "judge's preference", "higher", low=0, high=1)),
    Metric("cost.monthly_primary_usd", "API cost per month (USD)", "lower", "figure"),
    Metric("cost.monthly_candidate_usd", "self-hosted cost per month (USD)", "lower", "figure"),
    Metric("cost.monthly_savings_usd", "savings per month (USD)", "higher", "figure"),
    Metric("capacity.rps_at_slo", "requests/s within the latency SLO", "higher", "figure"),
    Metric("ops.hours_per_week", "operations hours per week", "lower", "figure"),
]

CATALOG: dict[str, Metric] = {metric.name: metric for metric in _METRICS}


def unknown_metric(name: str) -> str:
    """Why `name` is refused: not in the catalog, with the closest name when one is near."""
    close = difflib.get_close_matches(name, CATALOG, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else "the catalog is in docs/metrics.md"
    return f"unknown metric {name!r}; {hint}"


# Every evaluator's name, in the order they run: each produces at least one catalog metric.
EVALUATOR_NAMES: tuple[str, ...] = tuple(
    dict.fromkeys(m.evaluator for m in _METRICS if m.evaluator is not None)
)

# Metrics whose noise floor is measured: the candidate-vs-API score and the API-vs-API one.
NOISE_COUNTERPART = {"quality.semantic_similarity": "noise.semantic_similarity"}

# `mode: relative` compares a candidate metric with the API's own, request by request.
RELATIVE_COUNTERPART = {
    "candidate.latency_ms": "primary.latency_ms",
    "candidate.ttft_ms": "primary.ttft_ms",
}
