"""A request pair for review: the question, both answers, a word-level diff, the scores."""

from __future__ import annotations

import difflib
import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dashboard.theme import metric_label

Json = Mapping[str, Any]
_TOKENS = re.compile(r"\S+")


@dataclass(frozen=True)
class PairView:
    """What the worst-pairs panel shows of one pair."""

    id: str
    created_at: str
    request: str
    api_answer: str
    self_hosted_answer: str
    self_hosted_failed: bool
    scores: list[tuple[str, float | None]]


def _content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, Mapping)]
        return " ".join(part for part in parts if part)
    return "" if content is None else json.dumps(content)


def request_text(request: Any) -> str:
    """The question a person asked: the last user message (or the prompt)."""
    if isinstance(request, Mapping):
        messages = request.get("messages")
        if isinstance(messages, list) and messages:
            users = [m for m in messages if isinstance(m, Mapping) and m.get("role") == "user"]
            last = (users or messages)[-1]
            if isinstance(last, Mapping):
                return _content(last.get("content"))
        if "prompt" in request:
            return _content(request["prompt"])
        return json.dumps(request, indent=1)
    return "" if request is None else str(request)


def answer_text(answer: Json) -> str:
    """An answer as text: its words, else its tool calls as JSON, else its error."""
    if answer.get("text"):
        return str(answer["text"])
    if answer.get("tool_calls"):
        return json.dumps(answer["tool_calls"], indent=1)
    if answer.get("error"):
        return f"(error: {answer['error']})"
    return "(no answer)"


def pair_view(pair: Json) -> PairView:
    """A pair from GET /api/v1/pairs, ready to show."""
    candidate = pair.get("candidate") or {}
    scores = sorted(
        ((metric_label(metric), value) for metric, value in (pair.get("scores") or {}).items()),
        key=lambda item: item[0],
    )
    return PairView(
        id=str(pair["id"]),
        created_at=str(pair.get("created_at", "")),
        request=request_text(pair.get("request")),
        api_answer=answer_text(pair.get("primary") or {}),
        self_hosted_answer=answer_text(candidate),
        self_hosted_failed=bool(candidate.get("error")),
        scores=scores,
    )


def word_diff(left: str, right: str) -> list[tuple[str, str, str]]:
    """Word-level differences: (op, left words, right words), op as in difflib's opcodes."""
    a, b = _TOKENS.findall(left), _TOKENS.findall(right)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return [
        (op, " ".join(a[i1:i2]), " ".join(b[j1:j2])) for op, i1, i2, j1, j2 in matcher.get_opcodes()
    ]


REMOVED_STYLE = "background:#fbd5d5;text-decoration:line-through"
ADDED_STYLE = "background:#d4f0d4"


def diff_html(left: str, right: str) -> tuple[str, str]:
    """Both texts as escaped HTML: words only the API used struck out, words it lacks marked."""
    left_parts, right_parts = [], []
    for op, old, new in word_diff(left, right):
        if op == "equal":
            left_parts.append(html.escape(old))
            right_parts.append(html.escape(new))
            continue
        if old:
            left_parts.append(f'<span style="{REMOVED_STYLE}">{html.escape(old)}</span>')
        if new:
            right_parts.append(f'<span style="{ADDED_STYLE}">{html.escape(new)}</span>')
    return " ".join(left_parts), " ".join(right_parts)
