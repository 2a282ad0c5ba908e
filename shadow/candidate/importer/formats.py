"""The capture formats `switchover import --format` reads, by name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from shadow.candidate.importer import jsonl, litellm, openai_batch
from shadow.candidate.importer.records import Parsed

Reader = Callable[[Sequence[Path]], Parsed]

FORMATS: dict[str, Reader] = {
    "openai-batch": openai_batch.read,
    "jsonl": jsonl.read,
    "litellm": litellm.read,
}
