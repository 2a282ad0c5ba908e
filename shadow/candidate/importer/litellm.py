"""`--format litellm`: LiteLLM proxy spend logs (`LiteLLM_SpendLogs` rows).

The rows are those of LiteLLM's `LiteLLM_SpendLogs` table (`schema.prisma` in BerriAI/litellm):
`request_id` (the record key), `call_type`, `startTime`, `endTime`, `completionStartTime`,
`request_duration_ms`, `model`, `messages`, `response`, `proxy_server_request`, `status`,
`end_user`, `request_tags`. Export them as JSON Lines (one row per line, e.g. from
`psql -c "\\copy (select row_to_json(l) from \"LiteLLM_SpendLogs\" l) to 'spend.jsonl'"`) or as
the JSON array `GET /spend/logs` returns. The request and answer texts are there only when the
proxy runs with `store_prompts_in_spend_logs: true`; rows without them are skipped.

The primary's latency is `request_duration_ms` (else `endTime - startTime`), its time to
first token `completionStartTime - startTime`: gateway logs record both.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from shadow.candidate.importer.records import (
    Parsed,
    Record,
    RecordError,
    RecordFailed,
    endpoint_of,
    json_lines,
    moment,
    number,
    record_key,
    recorded_answer,
)

# LiteLLM's call types (sync and async) by the endpoint they stand for
_CALL_TYPES = {
    "completion": "/v1/chat/completions",
    "acompletion": "/v1/chat/completions",
    "text_completion": "/v1/completions",
    "atext_completion": "/v1/completions",
    "responses": "/v1/responses",
    "aresponses": "/v1/responses",
    "anthropic_messages": "/v1/messages",
}


def _rows(path: Path) -> Iterator[tuple[str, Any]]:
    with path.open("rb") as handle:
        head = handle.read(64).lstrip()
    if not head.startswith(b"["):
        yield from json_lines(path)
        return
    try:
        rows = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        yield f"{path}:1", RecordError(f"not a JSON array: {exc}")
        return
    for index, row in enumerate(rows, start=1):
        yield f"{path}:row {index}", row


def _span_ms(start: Any, end: Any) -> float | None:
    first, last = moment(start, "startTime"), moment(end, "endTime")
    if first is None or last is None:
        return None
    return max((last - first).total_seconds() * 1000, 0.0)


def _request(row: dict[str, Any]) -> Any:
    body = row.get("proxy_server_request")
    if isinstance(body, str):
        body = orjson.loads(body) if body.strip() else None
    if isinstance(body, dict) and body:
        return body
    messages = row.get("messages")
    if isinstance(messages, list) and messages:
        return {"model": row.get("model"), "messages": messages}
    raise RecordError("no request text (the proxy stores it with store_prompts_in_spend_logs)")


def _record(location: str, row: Any) -> Record:
    if not isinstance(row, dict):
        raise RecordError("a spend-log row is a JSON object")
    request_id = row.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        raise RecordError("no `request_id`")
    status = row.get("status")
    if status not in (None, "", "success"):
        raise RecordFailed(f"the request failed at the gateway (status {status!r})")
    call_type = str(row.get("call_type") or "")
    if call_type not in _CALL_TYPES:
        raise RecordError(f"call_type {call_type!r} is not a completion")
    response = row.get("response")
    if isinstance(response, str):
        response = orjson.loads(response) if response.strip() else None
    if not response:
        raise RecordError("no answer text (the proxy stores it with store_prompts_in_spend_logs)")
    request = _request(row)
    endpoint = endpoint_of(_CALL_TYPES[call_type], request, response)
    latency = number(row.get("request_duration_ms"), "request_duration_ms")
    if latency is None:
        latency = _span_ms(row.get("startTime"), row.get("endTime"))
    ttft = _span_ms(row.get("startTime"), row.get("completionStartTime"))
    tags = row.get("request_tags")
    feature = tags[0] if isinstance(tags, list) and tags and isinstance(tags[0], str) else None
    return Record(
        key=record_key("litellm", request_id),
        location=location,
        endpoint=endpoint,
        request=request,
        primary=recorded_answer(
            endpoint, response, latency, ttft, stream=request.get("stream") is True
        ),
        primary_request_id=request_id,
        received_at=moment(row.get("startTime"), "startTime"),
        feature=feature,
    )


def read(files: Sequence[Path]) -> Parsed:
    """Records from every export file, in order."""
    parsed = Parsed()
    for path in files:
        for location, row in _rows(path):
            parsed.take(location, row, _columns_read)
    return parsed


def _columns_read(location: str, row: Any) -> Record:
    try:
        return _record(location, row)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"a JSON column is not JSON: {exc}") from None
