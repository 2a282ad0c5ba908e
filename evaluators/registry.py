"""Every evaluator Switchover runs, by name. Adding one is adding a line here."""

from __future__ import annotations

from collections.abc import Callable

from evaluators.answers import ExactMatchEvaluator, LengthRatioEvaluator, RefusalEvaluator
from evaluators.base import Evaluator
from evaluators.config import EvaluatorsConfig
from evaluators.cost import CandidateCostEvaluator, PrimaryCostEvaluator, price_table
from evaluators.judge import JudgeEvaluator
from evaluators.latency import LatencyEvaluator
from evaluators.overlap import OverlapEvaluator
from evaluators.similarity import Encoder, SimilarityEvaluator
from evaluators.structured import JsonEvaluator, ToolCallEvaluator

Factory = Callable[[EvaluatorsConfig], Evaluator | None]

_EVALUATORS: dict[str, Factory] = {
    "latency": lambda config: LatencyEvaluator(),
    "semantic_similarity": lambda config: SimilarityEvaluator(
        Encoder(config.embedding_model, config.embedding_batch_size)
    ),
    "overlap": lambda config: OverlapEvaluator(),
    "exact_match": lambda config: ExactMatchEvaluator(),
    "json": lambda config: JsonEvaluator(),
    "tool_calls": lambda config: ToolCallEvaluator(),
    "refusal": lambda config: RefusalEvaluator(),
    "length_ratio": lambda config: LengthRatioEvaluator(),
    "primary_cost": lambda config: PrimaryCostEvaluator(price_table(config.prices)),
    "candidate_cost": lambda config: CandidateCostEvaluator(),
    "judge": lambda config: JudgeEvaluator(config.judge) if config.judge.enabled else None,
}

EVALUATOR_NAMES = tuple(_EVALUATORS)

# Evaluators that read only timings, token counts and models, never text: the only ones that
# can (re)score a pair stored without its text. A new evaluator is assumed to read text.
TEXT_FREE_EVALUATORS = frozenset({"latency", "length_ratio", "primary_cost", "candidate_cost"})

# The metric names criteria may use (SPEC §4), by the evaluator that produces them.
METRICS: dict[str, str] = {
    "primary.latency_ms": "latency",
    "candidate.latency_ms": "latency",
    "primary.ttft_ms": "latency",
    "candidate.ttft_ms": "latency",
    "candidate.tpot_ms": "latency",
    "candidate.error": "latency",
    "latency.ratio": "latency",
    "quality.semantic_similarity": "semantic_similarity",
    "noise.semantic_similarity": "semantic_similarity",
    "quality.rouge_l": "overlap",
    "quality.bleu": "overlap",
    "quality.exact_match": "exact_match",
    "quality.json_valid": "json",
    "quality.json_match": "json",
    "quality.tool_call_match": "tool_calls",
    "quality.refusal": "refusal",
    "quality.length_ratio": "length_ratio",
    "cost.primary_usd": "primary_cost",
    "cost.candidate_usd": "candidate_cost",
    "quality.judge_score": "judge",
}


def get_evaluators(
    config: EvaluatorsConfig, names: tuple[str, ...] | None = None
) -> list[Evaluator]:
    """The enabled evaluators (all, or those named), built for `config`."""
    unknown = set(names or ()) | set(config.disabled)
    unknown -= set(_EVALUATORS)
    if unknown:
        raise ValueError(f"unknown evaluator(s): {', '.join(sorted(unknown))}")
    selected = [n for n in (names or EVALUATOR_NAMES) if n not in config.disabled]
    built = (_EVALUATORS[name](config) for name in selected)
    return [evaluator for evaluator in built if evaluator is not None]


def evaluators_for_metrics(metrics: tuple[str, ...]) -> tuple[str, ...]:
    """The evaluators producing `metrics`; ValueError naming an unknown metric."""
    unknown = [metric for metric in metrics if metric not in METRICS]
    if unknown:
        known = ", ".join(sorted(METRICS))
        raise ValueError(f"unknown metric(s): {', '.join(unknown)} (known: {known})")
    return tuple(dict.fromkeys(METRICS[metric] for metric in metrics))
