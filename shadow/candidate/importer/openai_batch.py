"""`--format openai-batch`: a Batch API input file and its output (and error) files.

The input file has one request per line, `{"custom_id", "method", "url", "body"}`; the output
and error files one result per line, `{"custom_id", "response": {"status_code", "request_id",
"body"}, "error"}`, in any order (https://platform.openai.com/docs/api-reference/batch). They
are matched by `custom_id`. A result the batch marks as an error (`error` set, or a status
other than 200) is skipped and counted as failed. Anthropic's Message Batches have the same
layout with other field names (`params`; `result: {"type", "message"}`): one reader each.

The batch files hold no latencies: the primary's is "not measured". The answer's `created`
time is the record's arrival, so the recorded pattern of a batch is when its answers were made.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shadow.candidate.importer.records import (
    Parsed,
    Problem,
    Record,
    RecordError,
    RecordFailed,
    created_of,
    endpoint_of,
    json_lines,
    record_key,
    recorded_answer,
)

# (custom id, URL or None, request body) of one input line
_Input = tuple[str, str | None, Any]
# (custom id, request id, answer body) of one result line; raises RecordFailed for an error
_Result = tuple[str, str | None, Any]


def _custom_id(line: Any) -> str:
    if not isinstance(line, dict):
        raise RecordError("a batch line is a JSON object")
    custom_id = line.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise RecordError("no `custom_id`")
    return custom_id


def _openai_input(line: dict[str, Any]) -> _Input:
    url = line.get("url")
    if not isinstance(url, str):
        raise RecordError("no `url`")
    return _custom_id(line), url, line.get("body")


def _anthropic_input(line: dict[str, Any]) -> _Input:
    return _custom_id(line), "/v1/messages", line.get("params")


def _openai_result(line: dict[str, Any]) -> _Result:
    custom_id = _custom_id(line)
    error = line.get("error")
    if error:
        message = error.get("message") if isinstance(error, dict) else error
        raise RecordFailed(f"the batch failed this request: {message}")
    response = line.get("response")
    if not isinstance(response, dict):
        raise RecordError("no `response`")
    status = response.get("status_code")
    if status != 200:
        raise RecordFailed(f"the batch answered HTTP {status}")
    return custom_id, response.get("request_id"), response.get("body")


def _anthropic_result(line: dict[str, Any]) -> _Result:
    custom_id = _custom_id(line)
    result = line.get("result")
    if not isinstance(result, dict):
        raise RecordError("no `result`")
    if result.get("type") != "succeeded":
        raise RecordFailed(f"the batch did not answer: {result.get('type')}")
    message = result.get("message")
    return custom_id, message.get("id") if isinstance(message, dict) else None, message


def _reader(line: Any, openai: Any, anthropic: Any) -> Any:
    if isinstance(line, dict) and ("params" in line or "result" in line):
        return anthropic(line)
    if isinstance(line, dict):
        return openai(line)
    raise RecordError("a batch line is a JSON object")


def read(files: Sequence[Path]) -> Parsed:
    """Records from the input file (the first) matched with the output and error files."""
    if len(files) < 2:
        raise ValueError("openai-batch needs the input file and its output file")
    parsed = Parsed()
    results: dict[str, tuple[str, _Result | RecordError]] = {}
    for path in files[1:]:
        for location, line in json_lines(path):
            if isinstance(line, RecordError):
                parsed.problems.append(Problem(location, str(line)))
                continue
            try:
                result: _Result | RecordError = _reader(line, _openai_result, _anthropic_result)
                custom_id = result[0]  # type: ignore[index]
            except RecordError as exc:
                custom_id = line.get("custom_id") if isinstance(line, dict) else None
                if not isinstance(custom_id, str) or not isinstance(exc, RecordFailed):
                    parsed.problems.append(Problem(location, str(exc)))
                    continue
                result = exc
            results[custom_id] = (location, result)
    seen: set[str] = set()

    def matched(location: str, line: Any) -> Record:
        custom_id, url, body = _reader(line, _openai_input, _anthropic_input)
        if custom_id in seen:
            raise RecordError(f"custom_id {custom_id!r} appears twice in the input")
        seen.add(custom_id)
        if custom_id not in results:
            raise RecordError(f"no result for custom_id {custom_id!r} in the output")
        result_at, result = results[custom_id]
        if isinstance(result, RecordError):
            raise type(result)(f"{result} ({result_at})")
        _, request_id, answer = result
        endpoint = endpoint_of(url, body, answer)
        return Record(
            key=record_key("batch", custom_id, body),
            location=location,
            endpoint=endpoint,
            request=body,
            primary=recorded_answer(endpoint, answer),
            primary_request_id=request_id,
            received_at=created_of(answer),
        )

    for location, line in json_lines(files[0]):
        parsed.take(location, line, matched)
    return parsed
