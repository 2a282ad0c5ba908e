"""Answer-level checks: normalised exact match, refusals, relative length."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from evaluators.base import Values, answered, each, has_text
from evaluators.pair import Answer, PairView

_QUOTES = "\"'`\u201c\u201d\u2018\u2019\u00ab\u00bb"
_TRAILING = ".!?;:,"


def normalise(text: str) -> str:
    """Case, width, surrounding quotes, trailing punctuation and spacing removed."""
    text = unicodedata.normalize("NFKC", text).casefold().strip()
    text = text.strip(_QUOTES).strip().rstrip(_TRAILING).strip()
    return " ".join(text.split())


class ExactMatchEvaluator:
    """`quality.exact_match`: 1 when the answers are equal after normalisation."""

    name = "exact_match"
    metrics = ("quality.exact_match",)

    def score(self, pairs: Sequence[PairView]) -> list[Values]:
        """1.0 or 0.0 per pair whose primary answered in text."""
        return each(pairs, self._one)

    @staticmethod
    def _one(pair: PairView) -> Values:
        if not answered(pair) or not has_text(pair.primary.text):
            return {}
        same = normalise(pair.primary.text or "") == normalise(pair.candidate.text or "")
        return {"quality.exact_match": 1.0 if same else 0.0}


_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})
_REFUSAL = re.compile(
    r"""^\W*(?:
        (?:i'?m|i\ am)\ (?:so\ |very\ |really\ )?sorry\b[^.!?\n]{0,80}?
            \b(?:can'?t|cannot|can\ not|won'?t|unable|not\ able|not\ allowed|must\ decline)
      | (?:sorry|apologies|unfortunately)\b[^.!?\n]{0,40}?
            \b(?:i\ )?(?:can'?t|cannot|can\ not|won'?t|am\ unable|'m\ unable)
      | i\ (?:can'?t|cannot|can\ not|won'?t|will\ not|am\ unable\ to|'m\ unable\ to|
             am\ not\ able\ to|'m\ not\ able\ to|must\ decline\ to|have\ to\ decline\ to)
            \ (?:help|assist|provide|comply|do\ that|answer|fulfil|fulfill|support|share|
                 give|respond|continue|engage|create|generate|write)
      | as\ an\ ai\b[^.!?\n]{0,60}?\b(?:can'?t|cannot|unable|not\ able|don'?t)
    )""",
    re.IGNORECASE | re.VERBOSE,
)


def is_refusal(answer: Answer) -> bool:
    """The answer declines the request (content filter, or a refusal opening the text)."""
    if answer.finish_reason == "content_filter":
        return True
    if answer.tool_calls:
        return False
    text = (answer.text or "").translate(_APOSTROPHES)
    return bool(_REFUSAL.search(text[:300]))


class RefusalEvaluator:
    """`quality.refusal`: 1 when the candidate refused a request the primary answered."""

    name = "refusal"
    metrics = ("quality.refusal",)

    def score(self, pairs: Sequence[PairView]) -> list[Values]:
        """1.0 or 0.0 per pair where the primary answered."""
        return each(pairs, self._one)

    @staticmethod
    def _one(pair: PairView) -> Values:
        primary = pair.primary
        primary_answered = has_text(primary.text) or bool(primary.tool_calls)
        if not answered(pair) or not primary_answered or is_refusal(primary):
            return {}
        return {"quality.refusal": 1.0 if is_refusal(pair.candidate) else 0.0}


class LengthRatioEvaluator:
    """`quality.length_ratio`: candidate completion tokens / primary completion tokens."""

    name = "length_ratio"
    metrics = ("quality.length_ratio",)

    def score(self, pairs: Sequence[PairView]) -> list[Values]:
        """The ratio per pair where both sides' token counts are known."""
        return each(pairs, self._one)

    @staticmethod
    def _one(pair: PairView) -> Values:
        primary_tokens = pair.primary.completion_tokens
        candidate_tokens = pair.candidate.completion_tokens
        if not answered(pair) or not primary_tokens or candidate_tokens is None:
            return {}
        return {"quality.length_ratio": candidate_tokens / primary_tokens}
