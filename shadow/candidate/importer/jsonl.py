"""`--format jsonl`: one captured request per line, with its answer.

`{"request": {...}, "response": {...}, "latency_ms": 812, "ttft_ms": 240,
  "timestamp": "2026-11-02T10:15:00Z", "feature": "refunds", "id": "…", "endpoint": "…"}`

`request` is the body as sent (Chat Completions, Responses or Messages), `response` the
answer's body. Only `request` and `response` are required; without `latency_ms` the primary's
latency is "not measured", without `id` the record key is the request, answer and timestamp.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shadow.candidate.importer.records import (
    Parsed,
    Record,
    RecordError,
    created_of,
    endpoint_of,
    json_lines,
    moment,
    number,
    record_key,
    recorded_answer,
)


def read(files: Sequence[Path]) -> Parsed:
    """Records from every file, in order."""
    parsed = Parsed()
    for path in files:
        for location, line in json_lines(path):
            parsed.take(location, line, _record)
    return parsed


def _record(location: str, line: Any) -> Record:
    if not isinstance(line, dict):
        raise RecordError("a line is a JSON object with `request` and `response`")
    for name in ("request", "response"):
        if name not in line:
            raise RecordError(f"no `{name}`")
    request, response = line["request"], line["response"]
    endpoint = endpoint_of(line.get("endpoint"), request, response)
    at = moment(line.get("timestamp"), "timestamp") or created_of(response)
    feature = line.get("feature")
    if feature is not None and not isinstance(feature, str):
        raise RecordError("`feature` is not text")
    identity = line.get("id")
    key = (
        record_key("jsonl", str(identity))
        if identity is not None
        else record_key("jsonl", request, response, line.get("timestamp"))
    )
    return Record(
        key=key,
        location=location,
        endpoint=endpoint,
        request=request,
        primary=recorded_answer(
            endpoint,
            response,
            number(line.get("latency_ms"), "latency_ms"),
            number(line.get("ttft_ms"), "ttft_ms"),
            stream=request.get("stream") is True,
        ),
        primary_request_id=response.get("id") if isinstance(response, dict) else None,
        received_at=at,
        feature=feature,
    )
