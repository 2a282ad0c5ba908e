"""Word-overlap quality: ROUGE-L and BLEU through Hugging Face `evaluate`.

The metric modules are this project's own files (`evaluators/metrics/`), loaded by path, so
nothing is fetched from the hub.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import cache
from typing import Any

from evaluators.base import Values, answered, has_text
from evaluators.metrics import module_path
from evaluators.pair import PairView

_lock = threading.Lock()


@cache
def load_metric(name: str) -> Any:
    """The bundled `evaluate` metric `name`, loaded once per process, kept in memory."""
    import evaluate

    return evaluate.load(module_path(name), keep_in_memory=True)


def compute(name: str, predictions: list[str], references: list[str]) -> list[float]:
    """Per-example scores of the bundled metric `name`."""
    with _lock:  # an `evaluate` module buffers its inputs: one computation at a time
        result = load_metric(name).compute(predictions=predictions, references=references)
    return [float(value) for value in result[name]]


class OverlapEvaluator:
    """`quality.rouge_l` and `quality.bleu` of the candidate's text against the primary's."""

    name = "overlap"
    metrics = ("quality.rouge_l", "quality.bleu")

    def score(self, pairs: Sequence[PairView]) -> list[Values]:
        """Both metrics for every pair whose primary answered in text, in one call each."""
        results: list[Values] = [{} for _ in pairs]
        index = [
            i for i, pair in enumerate(pairs) if answered(pair) and has_text(pair.primary.text)
        ]
        if not index:
            return results
        references = [pairs[i].primary.text or "" for i in index]
        predictions = [pairs[i].candidate.text or "" for i in index]
        rouge = compute("rouge_l", predictions, references)
        bleu = compute("bleu", predictions, references)
        for position, i in enumerate(index):
            results[i] = {"quality.rouge_l": rouge[position], "quality.bleu": bleu[position]}
        return results
