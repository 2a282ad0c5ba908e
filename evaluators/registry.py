"""Every evaluator Switchover runs, by name. Adding one is adding a line here."""

from __future__ import annotations

from collections.abc import Callable

from evaluators.answers import ExactMatchEvaluator, LengthRatioEvaluator, RefusalEvaluator
from evaluators.base import Evaluator
from evaluators.catalog import CATALOG, EVALUATOR_NAMES
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

if tuple(_EVALUATORS) != EVALUATOR_NAMES:
    raise RuntimeError("the registry and the metric catalog name different evaluators")

# Evaluators that read only timings, token counts and models, never text: the only ones that
# can (re)score a pair stored without its text. A new evaluator is assumed to read text.
TEXT_FREE_EVALUATORS = frozenset({"latency", "length_ratio", "primary_cost", "candidate_cost"})

# The per-pair metric names (SPEC §4), by the evaluator that produces them.
METRICS: dict[str, str] = {m.name: m.evaluator for m in CATALOG.values() if m.evaluator}


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
