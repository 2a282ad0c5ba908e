"""Sentence BLEU per example, computed like `sacrebleu.sentence_bleu` with its defaults.

An `evaluate.Metric` module of this project: `evaluate.load(<path of this file>)`. Defaults of
sacrebleu's sentence BLEU: the `13a` tokenizer, case-sensitive, n-grams up to 4, `exp`
smoothing and the effective order. Scores are on a 0-1 scale (sacrebleu prints 0-100).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

import datasets
import evaluate

_DESCRIPTION = """BLEU of each prediction against its single reference (sentence level), with
the mteval-v13a tokenizer, exponential smoothing and effective n-gram order, on a 0-1 scale."""

_INPUTS = """predictions: list of str; references: list of str (one per prediction).
Returns {"bleu": list of float in [0, 1]}, one per prediction."""

MAX_ORDER = 4

# mteval-v13a: punctuation and symbols become tokens; periods and commas too unless they sit
# between digits; a dash after a digit is split off.
_RULES = (
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
)


def tokenize_13a(line: str) -> list[str]:
    """Tokens of `line` by the mteval-v13a rules sacrebleu uses by default."""
    line = line.rstrip().replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = (
            line.replace("&quot;", '"')
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
        )
    line = f" {line} "
    for pattern, replacement in _RULES:
        line = pattern.sub(replacement, line)
    return line.split()


def _ngrams(tokens: list[str]) -> Counter[tuple[str, ...]]:
    counts: Counter[tuple[str, ...]] = Counter()
    for n in range(1, MAX_ORDER + 1):
        # the n-grams as tuples, counted in C: zip of the list and its shifted copies
        counts.update(zip(*(tokens[i:] for i in range(n)), strict=False))
    return counts


def sentence_bleu(prediction: str, reference: str) -> float:
    """BLEU of one prediction against one reference, in [0, 1]."""
    hypothesis, target = tokenize_13a(prediction), tokenize_13a(reference)
    reference_counts = _ngrams(target)
    correct = [0] * MAX_ORDER
    total = [0] * MAX_ORDER
    for gram, count in _ngrams(hypothesis).items():
        total[len(gram) - 1] += count
        correct[len(gram) - 1] += min(count, reference_counts.get(gram, 0))
    if not any(correct):
        return 0.0
    sys_len, ref_len = len(hypothesis), len(target)
    brevity = 1.0 if sys_len >= ref_len else math.exp(1 - ref_len / sys_len)
    log_sum = 0.0
    order = 0
    smooth = 1.0
    for n in range(MAX_ORDER):
        if total[n] == 0:
            break
        order = n + 1
        if correct[n] == 0:
            smooth *= 2
            precision = 1.0 / (smooth * total[n])
        else:
            precision = correct[n] / total[n]
        log_sum += math.log(precision)
    return brevity * math.exp(log_sum / order)


class Bleu(evaluate.Metric):  # type: ignore[misc]
    """Sentence BLEU per example."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Post, M. (2018). A Call for Clarity in Reporting BLEU Scores. WMT.",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "references": datasets.Value("string"),
                }
            ),
        )

    def _compute(self, predictions: list[str], references: list[str]) -> dict[str, Any]:
        scores = [sentence_bleu(p, r) for p, r in zip(predictions, references, strict=True)]
        return {"bleu": scores}
