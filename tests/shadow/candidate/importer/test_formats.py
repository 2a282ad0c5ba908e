"""The capture formats: records with their recorded answers, and each bad line by file and line."""

from __future__ import annotations

import json

import pytest

from shadow.candidate.importer import jsonl, litellm, openai_batch
from tests.shadow.candidate.importer.batch_files import write_batch


def test_a_batch_is_matched_by_custom_id_with_malformed_lines_and_batch_errors_named(tmp_path):
    batch_in, batch_out = write_batch(tmp_path, 200, malformed=(3, 77, 150), batch_errors=(10, 11))
    parsed = openai_batch.read([batch_in, batch_out])
    assert parsed.read == 200
    assert len(parsed.records) == 195
    assert parsed.failed == 2
    by_line = {p.location: p for p in parsed.problems}
    for i in (3, 77, 150):
        assert f"{batch_in}:{i + 1}" in by_line
        assert "not JSON" in by_line[f"{batch_in}:{i + 1}"].reason
    for i in (10, 11):
        problem = by_line[f"{batch_in}:{i + 1}"]
        assert problem.failed
        assert "the batch failed this request: the model failed" in problem.reason
    record = next(r for r in parsed.records if r.location == f"{batch_in}:1")
    assert record.endpoint == "chat.completions"
    assert record.primary.text
    assert record.primary.completion_tokens == 30
    assert record.primary.latency_ms is None  # not measured, never 0
    assert record.primary.ttft_ms is None
    assert record.primary_request_id == "rid-0"
    assert record.received_at is not None


def test_the_same_batch_gives_the_same_record_keys(tmp_path):
    files = write_batch(tmp_path, 20)
    first = [r.pair_id("u") for r in openai_batch.read(files).records]
    again = [r.pair_id("u") for r in openai_batch.read(files).records]
    assert first == again
    assert len(set(first)) == 20
    assert [r.pair_id("other") for r in openai_batch.read(files).records] != first


def test_an_output_line_that_is_broken_is_named_and_its_request_left_out(tmp_path):
    batch_in, batch_out = write_batch(tmp_path, 5)
    lines = batch_out.read_text().splitlines()
    lines[1] = "{broken"
    batch_out.write_text("\n".join(lines) + "\n")
    parsed = openai_batch.read([batch_in, batch_out])
    assert len(parsed.records) == 4
    reasons = [str(p) for p in parsed.problems]
    assert any(r.startswith(f"{batch_out}:2: not JSON") for r in reasons)
    assert any("no result for custom_id 'req-3'" in r for r in reasons)


def test_jsonl_keeps_recorded_latency_and_names_bad_lines(tmp_path):
    good = {
        "request": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        "response": {
            "object": "chat.completion",
            "choices": [{"message": {"role": "assistant", "content": "hello"}}],
        },
        "latency_ms": 812,
        "timestamp": "2026-11-02T10:15:00Z",
        "feature": "greetings",
    }
    path = tmp_path / "log.jsonl"
    lines = [
        json.dumps(good),
        json.dumps({"request": good["request"]}),
        "",
        json.dumps({**good, "latency_ms": -3}),
        json.dumps({**good, "response": {"object": "chat.completion", "choices": []}}),
    ]
    path.write_text("\n".join(lines) + "\n")
    parsed = jsonl.read([path])
    assert parsed.read == 4
    [record] = parsed.records
    assert record.primary.latency_ms == 812.0
    assert record.primary.ttft_ms == 812.0  # a whole answer's first token is its end
    assert record.feature == "greetings"
    assert record.received_at.isoformat() == "2026-11-02T10:15:00+00:00"
    assert [str(p) for p in parsed.problems] == [
        f"{path}:2: no `response`",
        f"{path}:4: `latency_ms` is not a non-negative number: -3",
        f"{path}:5: the answer cannot be read (chat.completions): answer has no choices",
    ]


def test_litellm_spend_logs_give_latency_and_time_to_first_token(tmp_path):
    row = {
        "request_id": "chatcmpl-abc",
        "call_type": "acompletion",
        "startTime": "2026-11-02T10:15:00.000Z",
        "endTime": "2026-11-02T10:15:01.250Z",
        "completionStartTime": "2026-11-02T10:15:00.400Z",
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "response": {
            "object": "chat.completion",
            "choices": [{"message": {"role": "assistant", "content": "hello"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2},
        },
        "status": "success",
        "request_tags": ["greetings"],
    }
    failed = {**row, "request_id": "x2", "status": "failure"}
    no_text = {**row, "request_id": "x3", "messages": {}, "response": {}}
    path = tmp_path / "spend.json"
    path.write_text(json.dumps([row, failed, no_text]))
    parsed = litellm.read([path])
    [record] = parsed.records
    assert record.primary.latency_ms == pytest.approx(1250.0)
    assert record.primary.ttft_ms == pytest.approx(400.0)
    assert record.request == {"model": "gpt-4o-mini", "messages": row["messages"]}
    assert record.feature == "greetings"
    assert parsed.failed == 1
    assert [p.location for p in parsed.problems] == [f"{path}:row 2", f"{path}:row 3"]
    assert "store_prompts_in_spend_logs" in parsed.problems[1].reason
