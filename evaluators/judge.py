"""`quality.judge_score`: an LLM judge compares the two answers (optional, off by default).

Any OpenAI-compatible chat endpoint can judge. Each pair is judged once, with the primary's and
the candidate's answers shown in an order drawn from the pair id (random across pairs,
reproducible for a pair), under a versioned rubric. The score is the candidate's result:
1 when preferred, 0.5 for a tie, 0 when the primary's answer is preferred.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson

from evaluators.base import PartialFailure, Values, answered, has_text
from evaluators.config import JudgeConfig
from evaluators.pair import PairView
from evaluators.rubrics import rubrics

_WINNER = re.compile(r'"winner"\s*:\s*"(A|B|tie)"', re.IGNORECASE)
_CONVERSATION_LIMIT = 8000


def candidate_first(pair_id: str) -> bool:
    """Whether the candidate's answer is shown as A: a coin flip fixed by the pair id."""
    return hashlib.sha256(f"judge-order:{pair_id}".encode()).digest()[0] % 2 == 1


def conversation(request: dict[str, Any] | None) -> str:
    """The request as the judge reads it: the chat messages, or the completion prompt."""
    if not request:
        return "(request not stored)"
    if "messages" not in request:
        return str(request.get("prompt", ""))[-_CONVERSATION_LIMIT:]
    lines = []
    for message in request.get("messages") or []:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        lines.append(f"{message.get('role', 'user')}: {content or ''}")
    return "\n".join(lines)[-_CONVERSATION_LIMIT:]


def _answer_text(text: str | None, tool_calls: Sequence[dict[str, Any]]) -> str:
    if tool_calls:
        calls = [call.get("function") or {} for call in tool_calls]
        return "(tool calls) " + orjson.dumps(calls).decode()
    return text or "(empty answer)"


def parse_verdict(content: str) -> str:
    """`A`, `B` or `tie` from the judge's reply; ValueError when it gives none."""
    match = _WINNER.search(content)
    if match is None:
        raise ValueError(f"the judge gave no verdict: {content[:200]!r}")
    winner = match.group(1)
    return "tie" if winner.lower() == "tie" else winner.upper()


class JudgeEvaluator:
    """Pairwise LLM-as-judge through an OpenAI-compatible endpoint."""

    name = "judge"
    metrics = ("quality.judge_score",)

    def __init__(self, config: JudgeConfig, client: httpx.Client | None = None) -> None:
        if not config.base_url or not config.model:
            raise ValueError("the judge needs `base_url` and `model`")
        if config.rubric not in rubrics():
            raise ValueError(f"unknown judge rubric {config.rubric!r}")
        self.config = config
        self.client = client or httpx.Client(timeout=config.timeout_s)

    def score(self, pairs: Sequence[PairView]) -> list[Values]:
        """The judge's verdict per pair where both sides answered."""
        results: list[Values] = [{} for _ in pairs]
        errors: dict[int, str] = {}
        index = [
            i
            for i, pair in enumerate(pairs)
            if answered(pair) and (has_text(pair.primary.text) or pair.primary.tool_calls)
        ]
        with ThreadPoolExecutor(self.config.max_concurrency) as pool:
            outcomes = pool.map(self._judge_safely, [pairs[i] for i in index])
            for i, outcome in zip(index, outcomes, strict=True):
                if isinstance(outcome, float):
                    results[i] = {"quality.judge_score": outcome}
                else:
                    errors[i] = outcome
        if errors:
            raise PartialFailure(results, errors)
        return results

    def _judge_safely(self, pair: PairView) -> float | str:
        try:
            return self.judge(pair)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            return f"{type(exc).__name__}: {exc}"

    def judge(self, pair: PairView) -> float:
        """The candidate's result against the primary for one pair."""
        rubric = rubrics()[self.config.rubric]
        primary = _answer_text(pair.primary.text, pair.primary.tool_calls)
        candidate = _answer_text(pair.candidate.text, pair.candidate.tool_calls)
        flipped = candidate_first(pair.id)
        answer_a, answer_b = (candidate, primary) if flipped else (primary, candidate)
        body = {
            "model": self.config.model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": rubric["system"]},
                {
                    "role": "user",
                    "content": rubric["user"].format(
                        conversation=conversation(pair.request),
                        answer_a=answer_a,
                        answer_b=answer_b,
                    ),
                },
            ],
        }
        headers = {}
        key = os.environ.get(self.config.api_key_env or "") if self.config.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        url = (self.config.base_url or "").rstrip("/") + "/chat/completions"
        response = self.client.post(url, json=body, headers=headers)
        response.raise_for_status()
        content = response.json()["choices"][0]["message"]["content"] or ""
        winner = parse_verdict(content)
        if winner == "tie":
            return 0.5
        candidate_label = "A" if flipped else "B"
        return 1.0 if winner == candidate_label else 0.0
