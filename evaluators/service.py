"""Scoring pairs: run the evaluators over a batch and store one row per pair and metric."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.orm import Session

from evaluators.base import Evaluator, PartialFailure, Values
from evaluators.pair import Deployment, PairTexts, PairView, pair_view
from evaluators.registry import METRICS, TEXT_FREE_EVALUATORS, evaluators_for_metrics
from evaluators.repository import (
    delete_scores,
    insert_scores,
    load_pairs,
    scored_pair_ids,
)
from evaluators.runtime import ScoringRuntime, deployment_key
from storage.repository import latest_capacity

log = logging.getLogger(__name__)

_ERROR_LIMIT = 2000


@dataclass(frozen=True)
class ScoreRow:
    """One metric of one pair: a value, or the error that prevented it."""

    pair_id: str
    metric: str
    value: float | None
    error: str | None = None


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:_ERROR_LIMIT]


def _run(evaluator: Evaluator, pairs: Sequence[PairView]) -> tuple[list[Values], dict[int, str]]:
    """The evaluator's values per pair, and the errors of the pairs it failed on."""
    try:
        values = evaluator.score(pairs)
        if len(values) != len(pairs):
            raise RuntimeError(f"returned {len(values)} results for {len(pairs)} pairs")
        for produced in values:
            unknown = set(produced) - set(evaluator.metrics)
            if unknown:
                raise RuntimeError(f"produced metrics it does not declare: {sorted(unknown)}")
        return values, {}
    except PartialFailure as exc:
        return exc.values, exc.errors
    except Exception as exc:
        if len(pairs) == 1:
            log.exception("evaluator %s failed on pair %s", evaluator.name, pairs[0].id)
            return [{}], {0: _error_text(exc)}
    # Find which pairs of the batch it fails on, so the others keep their scores.
    results: list[Values] = []
    errors: dict[int, str] = {}
    for i, pair in enumerate(pairs):
        values, failed = _run(evaluator, [pair])
        results.append(values[0])
        if failed:
            errors[i] = failed[0]
    return results, errors


def _reads_text(evaluator: Evaluator) -> bool:
    return evaluator.name not in TEXT_FREE_EVALUATORS


def evaluate(pairs: Sequence[PairView], evaluators: Sequence[Evaluator]) -> list[ScoreRow]:
    """Every evaluator over the batch; a failing evaluator yields error rows for its metrics.

    Pairs whose text is not available get only the metrics that read no text.
    """
    rows: list[ScoreRow] = []
    for evaluator in evaluators:
        applicable = pairs
        if _reads_text(evaluator):
            applicable = [pair for pair in pairs if pair.text_available]
        if not applicable:
            continue
        values, errors = _run(evaluator, applicable)
        for i, pair in enumerate(applicable):
            if i in errors:
                rows += [ScoreRow(pair.id, m, None, errors[i]) for m in evaluator.metrics]
                continue
            for metric, value in values[i].items():
                if math.isfinite(value):
                    rows.append(ScoreRow(pair.id, metric, float(value)))
                else:
                    rows.append(ScoreRow(pair.id, metric, None, f"not a finite number: {value}"))
    return rows


def _deployment(
    session: Session, runtime: ScoringRuntime, use_case: str, candidate: str
) -> Deployment | None:
    configured = runtime.deployments.get(deployment_key(use_case, candidate))
    if configured is None:
        return None
    return replace(configured, capacity_rps=latest_capacity(session, use_case, candidate))


def _views(
    session: Session,
    pair_ids: Sequence[str],
    runtime: ScoringRuntime,
    texts: Mapping[str, PairTexts] | None = None,
) -> list[PairView]:
    loaded = load_pairs(session, pair_ids)
    deployments = {
        key: _deployment(session, runtime, *key)
        for key in {(pair.use_case, pair.candidate_name) for pair, _ in loaded}
    }
    given = texts or {}
    return [
        pair_view(pair, noise, deployments[pair.use_case, pair.candidate_name], given.get(pair.id))
        for pair, noise in loaded
    ]


def _as_dicts(rows: Sequence[ScoreRow]) -> list[dict[str, object]]:
    return [
        {"pair_id": r.pair_id, "metric": r.metric, "value": r.value, "error": r.error} for r in rows
    ]


def score_stored_pairs(
    session: Session,
    pair_ids: Sequence[str],
    runtime: ScoringRuntime,
    compute: AbstractContextManager[Any] | None = None,
    texts: Mapping[str, PairTexts] | None = None,
) -> int:
    """Score the stored pairs that have no scores yet; how many score rows were written.

    `compute` (a lock) is held only while the evaluators run, so that one batch's database
    reads and writes overlap the next batch's model work. `texts` are those of pairs stored
    without text, from their scoring messages.
    """
    wanted = list(dict.fromkeys(pair_ids))
    done = scored_pair_ids(session, wanted)
    todo = [pair_id for pair_id in wanted if pair_id not in done]
    views = _views(session, todo, runtime, texts)
    if not views:
        return 0
    with compute or nullcontext():
        rows = evaluate(views, runtime.evaluators)
    return insert_scores(session, _as_dicts(rows))


def rescore_pairs(
    session: Session,
    pair_ids: Sequence[str],
    runtime: ScoringRuntime,
    metrics: Sequence[str] | None = None,
) -> int:
    """Replace the scores of stored pairs (only `metrics`, when given); rows written.

    A pair stored without its text keeps the scores that read text: they cannot be redone.
    """
    evaluators = runtime.evaluators
    if metrics:
        names = evaluators_for_metrics(tuple(metrics))
        evaluators = [e for e in evaluators if e.name in names]
        missing = [m for m in metrics if METRICS[m] not in {e.name for e in evaluators}]
        if missing:
            raise ValueError(f"no enabled evaluator produces {', '.join(missing)}")
    views = _views(session, list(dict.fromkeys(pair_ids)), runtime)
    rows = evaluate(views, evaluators)
    if metrics:
        rows = [row for row in rows if row.metric in metrics]
    redone = list(metrics) if metrics else None
    delete_scores(session, [view.id for view in views if view.text_available], redone)
    without_text = [view.id for view in views if not view.text_available]
    if without_text:
        text_free = [m for e in evaluators if not _reads_text(e) for m in e.metrics]
        replaced = [m for m in text_free if redone is None or m in redone]
        delete_scores(session, without_text, replaced)
    return insert_scores(session, _as_dicts(rows))
