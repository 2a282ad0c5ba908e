"""ROUGE-L F-measure per example, computed like Google's `rouge_score` (no stemming).

An `evaluate.Metric` module of this project: `evaluate.load(<path of this file>)`. It returns one
score per prediction rather than an aggregate, because each request pair is stored on its own.
"""

from __future__ import annotations

import re
from typing import Any

import datasets
import evaluate

_DESCRIPTION = """ROUGE-L: longest common subsequence of tokens between prediction and reference,
as the F-measure of its precision and recall. Tokens are lower-cased runs of [a-z0-9], the
`rouge_score` default tokenizer without stemming."""

_INPUTS = """predictions: list of str; references: list of str (one per prediction).
Returns {"rouge_l": list of float in [0, 1]}, one per prediction."""

_NON_ALPHANUM = re.compile(r"[^a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lower-case runs of letters and digits, as `rouge_score` tokenizes without a stemmer."""
    return [token for token in _NON_ALPHANUM.sub(" ", text.lower()).split() if token]


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence, bit-parallel (Hyyrö 2004): O(len(a)·len(b)/w)."""
    if not a or not b:
        return 0
    masks: dict[str, int] = {}
    for i, token in enumerate(a):
        masks[token] = masks.get(token, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for token in b:
        u = v & masks.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure of one prediction against its reference."""
    predicted, target = tokenize(prediction), tokenize(reference)
    common = lcs_length(target, predicted)
    if common == 0:
        return 0.0
    precision = common / len(predicted)
    recall = common / len(target)
    return 2 * precision * recall / (precision + recall)


class RougeL(evaluate.Metric):  # type: ignore[misc]
    """ROUGE-L per example."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Lin, C.-Y. (2004). ROUGE: A Package for Automatic Evaluation of Summaries.",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "references": datasets.Value("string"),
                }
            ),
        )

    def _compute(self, predictions: list[str], references: list[str]) -> dict[str, Any]:
        return {"rouge_l": [rouge_l(p, r) for p, r in zip(predictions, references, strict=True)]}
