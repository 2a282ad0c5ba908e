"""The simulator's prompt set: prompts with reference, paraphrased and wrong answers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

PROMPTS_FILE = Path(__file__).with_name("prompts.jsonl")

PromptKind = Literal["support", "json_extraction", "classification", "tool_call"]
AnswerVariant = Literal["reference", "paraphrase", "wrong"]
ANSWER_VARIANTS: tuple[AnswerVariant, ...] = ("reference", "paraphrase", "wrong")


class PromptMessage(BaseModel):
    """One chat message of a prompt."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


class ToolCallAnswer(BaseModel):
    """The function call a tool_call prompt is answered with."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    arguments: dict[str, Any]


class PromptItem(BaseModel):
    """A prompt of the set with its three possible answers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    kind: PromptKind
    messages: tuple[PromptMessage, ...]
    reference: str | ToolCallAnswer
    paraphrase: str | ToolCallAnswer
    wrong: str | ToolCallAnswer
    response_format: dict[str, Any] | None = None
    tools: tuple[dict[str, Any], ...] | None = None

    @model_validator(mode="after")
    def _check_consistency(self) -> PromptItem:
        if not any(message.role == "user" for message in self.messages):
            raise ValueError("messages must contain a user message")
        answers = [self.answer(variant) for variant in ANSWER_VARIANTS]
        if self.kind != "tool_call":
            if not all(isinstance(answer, str) for answer in answers):
                raise ValueError(f"answers of a {self.kind} item must be strings")
            return self
        calls = [answer for answer in answers if isinstance(answer, ToolCallAnswer)]
        if len(calls) != len(answers):
            raise ValueError("answers of a tool_call item must be {name, arguments} objects")
        if not self.tools:
            raise ValueError("a tool_call item needs tools")
        offered = {tool.get("function", {}).get("name") for tool in self.tools}
        for call in calls:
            if call.name not in offered:
                raise ValueError(f"answer calls {call.name!r}, which is not among the tools")
        return self

    @property
    def prompt_text(self) -> str:
        """The content of the last user message, the key the simulator recognises."""
        return next(m.content for m in reversed(self.messages) if m.role == "user")

    def answer(self, variant: AnswerVariant) -> str | ToolCallAnswer:
        """The answer of the given variant."""
        answer: str | ToolCallAnswer = getattr(self, variant)
        return answer


def load_prompts(path: Path | None = None) -> list[PromptItem]:
    """Load a JSON Lines prompt set (default: the bundled one); a bad line raises ValueError."""
    path = PROMPTS_FILE if path is None else path
    items: list[PromptItem] = []
    seen: dict[str, int] = {}
    with path.open("rb") as lines:
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                item = PromptItem.model_validate(orjson.loads(line))
            except (orjson.JSONDecodeError, ValidationError) as exc:
                raise ValueError(f"{path}:{lineno}: invalid prompt item: {exc}") from exc
            if item.id in seen:
                raise ValueError(
                    f"{path}:{lineno}: id {item.id!r} already used on line {seen[item.id]}"
                )
            seen[item.id] = lineno
            items.append(item)
    return items


def message_text(content: object) -> str:
    """The text of an OpenAI message content: a string, text parts, or nothing."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def last_user_text(messages: Sequence[object]) -> str | None:
    """The text of the last user message of a chat request, None when there is none."""
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return message_text(message.get("content"))
    return None


class PromptIndex:
    """Finds a prompt item by the exact text of the last user message (or completions prompt)."""

    def __init__(self, items: Iterable[PromptItem]) -> None:
        self._by_text: dict[str, PromptItem] = {}
        for item in items:
            other = self._by_text.setdefault(item.prompt_text, item)
            if other is not item:
                raise ValueError(f"items {other.id!r} and {item.id!r} have the same user message")

    def __len__(self) -> int:
        return len(self._by_text)

    def get(self, text: str) -> PromptItem | None:
        """The item whose last user message is exactly `text`."""
        return self._by_text.get(text)
