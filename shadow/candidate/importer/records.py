"""What every capture format produces: records with their recorded answers, and problems."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from shadow.jobs import ENDPOINT_PATHS
from shadow.worker.caller import answer_fields
from shadow.worker.wire import InvalidAnswer, read_answer
from storage.schemas import AnswerFields

# The endpoint a captured request was sent to, by its URL path, as jobs and pairs name it.
# Only those Switchover serves (`ENDPOINT_PATHS`) are imported; the others are skipped with
# their reason, and are taken in as soon as the worker path serves them.
URL_ENDPOINTS = {
    "/v1/chat/completions": "chat.completions",
    "/v1/completions": "completions",
    "/v1/responses": "responses",
    "/v1/messages": "messages",
}
# The endpoint of a recorded answer, by its `object` (OpenAI) or `type` (Anthropic) field.
ANSWER_ENDPOINTS = {
    "chat.completion": "chat.completions",
    "text_completion": "completions",
    "response": "responses",
    "message": "messages",
}
_NAMESPACE = uuid.UUID("5b0c6f1e-9a57-4d51-8f43-1d2b8f0e7c19")


class RecordError(ValueError):
    """A record that cannot be imported; the message is the reason."""


class RecordFailed(RecordError):
    """A record the capture itself marks as failed (a batch error, a non-200 answer)."""


@dataclass(frozen=True)
class Record:
    """One captured request with the answer the primary gave."""

    key: str
    location: str
    endpoint: str
    request: dict[str, Any]
    primary: AnswerFields
    primary_request_id: str | None = None
    received_at: datetime | None = None
    feature: str | None = None

    def pair_id(self, use_case: str, candidate: str | None = None) -> str:
        """The pair's id: fixed by the use case and the record key, so a re-run adds nothing.

        `candidate` names the use case's second and later candidates (each answers the record
        in a pair of its own); the first-listed one's pair has the record's own id.
        """
        name = (
            f"{use_case}\n{self.key}"
            if candidate is None
            else f"{use_case}\n{candidate}\n{self.key}"
        )
        return str(uuid.uuid5(_NAMESPACE, name))


@dataclass(frozen=True)
class Problem:
    """A record left out: where it is and why."""

    location: str
    reason: str
    failed: bool = False

    def __str__(self) -> str:
        return f"{self.location}: {self.reason}"


@dataclass
class Parsed:
    """What a format read from its files."""

    read: int = 0
    records: list[Record] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def failed(self) -> int:
        """Records the capture marks as failed."""
        return sum(1 for problem in self.problems if problem.failed)

    def take(self, location: str, row: Any, build: Callable[[str, Any], Record]) -> None:
        """Count one captured record; keep what `build` makes of it, or why it is left out.

        `row` may be the RecordError its reading gave (`json_lines`); `build` raises one for a
        record it cannot take.
        """
        self.read += 1
        try:
            if isinstance(row, RecordError):
                raise row
            self.records.append(build(location, row))
        except RecordError as exc:
            self.problems.append(Problem(location, str(exc), isinstance(exc, RecordFailed)))


def record_key(*parts: Any) -> str:
    """A record key from its identifying parts (canonical JSON, hashed)."""
    data = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(data).hexdigest()


def json_lines(path: Path) -> Iterator[tuple[str, Any | RecordError]]:
    """(`file:line`, object or the error) of each non-blank line of a JSON Lines file."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            location = f"{path}:{number}"
            try:
                yield location, orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield location, RecordError(f"not JSON: {exc}")


def endpoint_of(url: str | None, request: Any, response: Any) -> str:
    """The endpoint of a captured request, from its URL or else its answer's shape."""
    if url is not None:
        path = "/" + str(url).split("?", 1)[0].lstrip("/")
        if not path.startswith("/v1/"):
            path = "/v1" + path
        endpoint = URL_ENDPOINTS.get(path)
        if endpoint is None:
            raise RecordError(f"unknown endpoint {url!r}")
    else:
        kind = (
            response.get("object") or response.get("type") if isinstance(response, dict) else None
        )
        endpoint = ANSWER_ENDPOINTS.get(str(kind)) if kind is not None else None
        if endpoint is None:
            raise RecordError("cannot tell the endpoint: the answer has no known `object`")
    if endpoint not in ENDPOINT_PATHS:
        raise RecordError(f"{endpoint} requests are not mirrored by this version")
    if not isinstance(request, dict) or not request:
        raise RecordError("the request body is not a JSON object")
    return endpoint


def recorded_answer(
    endpoint: str,
    response: Any,
    latency_ms: float | None = None,
    ttft_ms: float | None = None,
    stream: bool = False,
) -> AnswerFields:
    """The primary side from a recorded answer body, by the worker's one answer parser.

    Without a recorded latency it is "not measured" (None), never 0; a whole answer's time to
    first token is its latency, as for a mirrored one.
    """
    if not isinstance(response, dict):
        raise RecordError("the answer is not a JSON object")
    if isinstance(response.get("error"), dict):
        raise RecordFailed(f"the answer is an error: {response['error'].get('message')}")
    try:
        answer, _ = read_answer(orjson.dumps(response), stream=False, latency_ms=0.0, form=endpoint)
    except InvalidAnswer as exc:
        raise RecordError(f"the answer cannot be read ({endpoint}): {exc}") from None
    if ttft_ms is None and not stream:
        ttft_ms = latency_ms
    return answer_fields(answer, 200, latency_ms, ttft_ms, streamed=False)


def number(value: Any, name: str) -> float | None:
    """An optional non-negative number of a record."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise RecordError(f"`{name}` is not a non-negative number: {value!r}")
    return float(value)


def moment(value: Any, name: str) -> datetime | None:
    """An optional time: ISO 8601 text or seconds since 1970 (UTC unless given)."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise RecordError(f"`{name}` is not an ISO time or epoch seconds: {value!r}")


def created_of(response: Any) -> datetime | None:
    """When the answer was made, from its `created` / `created_at` (epoch seconds)."""
    if not isinstance(response, dict):
        return None
    value = response.get("created", response.get("created_at"))
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(float(value), UTC)
    return None
