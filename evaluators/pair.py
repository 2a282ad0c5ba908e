"""A read-only view of a stored request pair: what the evaluators get instead of ORM rows."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import orjson
from pydantic import BaseModel

from storage.models import NoiseReask, RequestPair


@dataclass(frozen=True, slots=True)
class Answer:
    """One side's answer and how it was measured."""

    text: str | None = None
    tool_calls: tuple[dict[str, Any], ...] = ()
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    error_kind: str | None = None

    @property
    def failed(self) -> bool:
        """Error, timeout or an answer that could not be parsed."""
        return self.error_kind is not None


@dataclass(frozen=True, slots=True)
class Deployment:
    """What one replica of the candidate costs per hour and serves (once a replay measured it)."""

    hourly_usd: float
    capacity_rps: float | None = None


@dataclass(frozen=True, slots=True)
class PairView:
    """A stored pair as the evaluators see it."""

    id: str
    use_case: str
    endpoint: str
    request: dict[str, Any] | None
    primary_model: str
    candidate_model: str
    primary: Answer
    candidate: Answer
    noise: Answer | None = None
    deployment: Deployment | None = None
    # False for a pair stored without its text (`store_text: false`) when the scoring
    # message's texts are not at hand: then only evaluators that read no text run on it.
    text_available: bool = True

    @property
    def response_format(self) -> dict[str, Any] | None:
        """The `response_format` the client asked for (a Responses `text.format` alike)."""
        request = self.request or {}
        value = request.get("response_format")
        text = request.get("text")
        if value is None and isinstance(text, dict) and isinstance(text.get("format"), dict):
            # Responses spells it {"type": "json_schema", "name", "schema", ...}, flat
            fmt = dict(text["format"])
            kind = fmt.pop("type", None)
            value = {"type": kind, "json_schema": fmt} if kind == "json_schema" else {"type": kind}
        return value if isinstance(value, dict) else None

    @property
    def offers_tools(self) -> bool:
        """Whether the request offered tools (or functions) to call."""
        request = self.request or {}
        return bool(request.get("tools") or request.get("functions"))


class AnswerText(BaseModel):
    """One answer's text and tool calls."""

    text: str | None = None
    tool_calls: list[Any] | None = None


class PairTexts(BaseModel):
    """The texts of a pair stored without them (`store_text: false`).

    They travel in the scoring message, through the broker only, so that the quality metrics
    are still scored; the database never sees them.
    """

    request_body: str | None = None
    primary: AnswerText = AnswerText()
    candidate: AnswerText = AnswerText()
    noise: AnswerText | None = None


def _request(body: str | None) -> dict[str, Any] | None:
    if body is None:
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _calls(value: list[Any] | None) -> tuple[dict[str, Any], ...]:
    return tuple(call for call in value or () if isinstance(call, dict))


def _answer(row: RequestPair | NoiseReask, prefix: str = "") -> Answer:
    """One side's fields of a stored row (`primary_text`, … or a re-ask's `text`, …)."""

    def field(name: str) -> Any:
        return getattr(row, prefix + name)

    return Answer(
        text=field("text"),
        tool_calls=_calls(field("tool_calls")),
        finish_reason=field("finish_reason"),
        prompt_tokens=field("prompt_tokens"),
        completion_tokens=field("completion_tokens"),
        latency_ms=field("latency_ms"),
        ttft_ms=field("ttft_ms"),
        tpot_ms=field("tpot_ms"),
        # The primary's failures are not stored: a mirrored answer is one the client got.
        error_kind=None if prefix == "primary_" else field("error_kind"),
    )


def _with_text(answer: Answer, given: AnswerText | None) -> Answer:
    if given is None:
        return answer
    return replace(answer, text=given.text, tool_calls=_calls(given.tool_calls))


def _with_texts(view: PairView, texts: PairTexts) -> PairView:
    noise = view.noise
    return replace(
        view,
        request=_request(texts.request_body),
        primary=_with_text(view.primary, texts.primary),
        candidate=_with_text(view.candidate, texts.candidate),
        noise=None if noise is None else _with_text(noise, texts.noise),
        text_available=True,
    )


def pair_view(
    pair: RequestPair,
    noise: NoiseReask | None = None,
    deployment: Deployment | None = None,
    texts: PairTexts | None = None,
) -> PairView:
    """The view of a stored pair (and its noise re-ask); `texts` fill in unstored text."""
    view = PairView(
        id=pair.id,
        use_case=pair.use_case,
        endpoint=pair.endpoint,
        request=_request(pair.request_body),
        primary_model=pair.primary_model,
        candidate_model=pair.candidate_model,
        primary=_answer(pair, "primary_"),
        candidate=_answer(pair, "candidate_"),
        noise=None if noise is None else _answer(noise),
        deployment=deployment,
        text_available=pair.text_stored,
    )
    if texts is not None and not pair.text_stored:
        return _with_texts(view, texts)
    return view
