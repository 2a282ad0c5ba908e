"""OpenAI Batch API files written by the tests: an input file and its output file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shadow.simulator.prompts import load_prompts

SUPPORT = [p for p in load_prompts() if p.kind == "support"]


def write_batch(
    directory: Path,
    count: int = 200,
    *,
    malformed: tuple[int, ...] = (),
    batch_errors: tuple[int, ...] = (),
    prompt: str | None = None,
    created: int = 1_761_000_000,
) -> tuple[Path, Path]:
    """A batch of `count` chat requests answered with the reference answers.

    `malformed`: 0-based record numbers whose input line is cut short; `batch_errors`: those
    the batch failed (an `error` result). Output lines come in reverse order, as batches do
    not keep the input's. `prompt` replaces every user message (privacy tests).
    """
    inputs, outputs = [], []
    for i in range(count):
        item = SUPPORT[i % len(SUPPORT)]
        messages = [m.model_dump() for m in item.messages]
        if prompt is not None:
            messages[-1]["content"] = f"{prompt} ({i})"
        body = {"model": "gpt-4o-mini", "messages": messages}
        line = json.dumps(
            {"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}
        )
        inputs.append(line[: len(line) // 2] if i in malformed else line)
        answer = str(item.reference) if prompt is None else f"{prompt} ({i})"
        if i in batch_errors:
            result: dict[str, Any] = {
                "id": f"batch_req_{i}",
                "custom_id": f"req-{i}",
                "response": None,
                "error": {"code": "server_error", "message": "the model failed"},
            }
        else:
            result = {
                "id": f"batch_req_{i}",
                "custom_id": f"req-{i}",
                "response": {
                    "status_code": 200,
                    "request_id": f"rid-{i}",
                    "body": {
                        "id": f"chatcmpl-{i}",
                        "object": "chat.completion",
                        "created": created + i,
                        "model": "gpt-4o-mini-2024-07-18",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": answer},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 40, "completion_tokens": 30, "total_tokens": 70},
                    },
                },
                "error": None,
            }
        outputs.append(json.dumps(result))
    batch_in, batch_out = directory / "batch_input.jsonl", directory / "batch_output.jsonl"
    batch_in.write_text("\n".join(inputs) + "\n")
    batch_out.write_text("\n".join(reversed(outputs)) + "\n")
    return batch_in, batch_out
