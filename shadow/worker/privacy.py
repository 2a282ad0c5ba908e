"""What of a measured pair may be stored: redaction, `store_text: false`, and no secrets.

Applied by the worker where a pair is turned into rows, never on the proxy's hot path. Every
text that would be stored passes through one `Redactor`: the request body's strings, both
answers and the noise re-ask, tool-call arguments and error messages. Configured API keys are
always masked, whatever the configuration says. The hashes are of the redacted text, so they
cannot be used to confirm a guess at what was masked.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from evaluators.pair import AnswerText, PairTexts
from shadow.bodies import dumps_body
from shadow.config import PrivacySettings
from storage.schemas import AnswerFields, PairCreate

SECRET = "[SECRET]"
# Secrets shorter than this are not searched for: masking them would mangle ordinary text.
_MIN_SECRET_LENGTH = 8

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# 13 to 19 digits, optionally grouped by single spaces or dashes; kept only if Luhn-valid.
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_PHONE = re.compile(
    r"""(?<![\w+])(?:
        \+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}  # +44 20 7946 0958
      | \(\d{3}\)[ .-]?\d{3}[ .-]\d{4}                                    # (555) 123-4567
      | \d{3}[.-]\d{3}[.-]\d{4}                                           # 555-123-4567
      | 0\d{1,4}[ /.-]?\d{3,4}[ .-]?\d{3,4}                               # 030 1234567
    )(?![\w])""",
    re.VERBOSE,
)


def _luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _digits(text: str) -> str:
    return "".join(char for char in text if char.isdigit())


def _card(match: re.Match[str]) -> str:
    return "[CARD]" if _luhn(_digits(match.group())) else match.group()


def _phone(match: re.Match[str]) -> str:
    return "[PHONE]" if 7 <= len(_digits(match.group())) <= 15 else match.group()


Rule = tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]

_BUILT_IN: dict[str, Rule] = {
    "card": (_CARD, _card),
    "email": (_EMAIL, "[EMAIL]"),
    "phone": (_PHONE, _phone),
}


class Redactor:
    """Masks secrets, the chosen built-in kinds and custom patterns in text."""

    def __init__(
        self, kinds: Sequence[str], patterns: Sequence[tuple[str, str]], secrets: Sequence[str]
    ) -> None:
        # Longest first, so that a key containing another key is masked whole.
        self._secrets = sorted(
            {s for s in secrets if len(s) >= _MIN_SECRET_LENGTH}, key=len, reverse=True
        )
        # Custom patterns first: a domain's own identifiers are replaced whole before the
        # built-in kinds could mask parts of them.
        self._rules: list[Rule] = [
            (re.compile(regex), f"[{name.upper()}]") for name, regex in patterns
        ]
        self._rules += [_BUILT_IN[kind] for kind in ("card", "email", "phone") if kind in kinds]

    def text(self, text: str) -> str:
        """`text` with every secret and configured pattern masked."""
        for secret in self._secrets:
            text = text.replace(secret, SECRET)
        for pattern, replacement in self._rules:
            text = pattern.sub(replacement, text)
        return text

    def value(self, value: Any) -> Any:
        """A JSON value with every string in it redacted (keys are left alone)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in value.items()}
        return value

    def json_text(self, text: str) -> str:
        """A JSON document's strings redacted; a document that is not JSON, as plain text.

        Redacting the parsed strings rather than the raw text keeps escapes such as `\\n`
        from being read as part of a phone number or an address.
        """
        try:
            data = orjson.loads(text)
            redacted = self.value(data)
        except orjson.JSONDecodeError:
            return self.text(text)
        except RecursionError:
            # nested deeper than the walk can go: every string is still in the raw text
            return self.text(text)
        return text if redacted == data else dumps_body(redacted).decode()

    def tool_calls(self, calls: list[Any] | None) -> list[Any] | None:
        """Tool calls with their arguments (a JSON text each) and other strings redacted."""
        if calls is None:
            return None
        return [self._tool_call(call) for call in calls]

    def _tool_call(self, call: Any) -> Any:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            return self.value(call)
        arguments = function.get("arguments")
        redacted = self.value(function)
        if isinstance(arguments, str):
            redacted["arguments"] = self.json_text(arguments)
        return {**self.value(call), "function": redacted}


@lru_cache(maxsize=64)
def redactor_for(
    kinds: tuple[str, ...], patterns: tuple[tuple[str, str], ...], secrets: tuple[str, ...]
) -> Redactor:
    """A compiled redactor, kept for the next pair of the same use case."""
    return Redactor(kinds, patterns, secrets)


def answer_sha256(text: str | None, tool_calls: list[Any] | None) -> str | None:
    """SHA-256 of an answer's text; with tool calls, of the text, a newline and their JSON."""
    if text is None and not tool_calls:
        return None
    data = (text or "").encode()
    if tool_calls:
        data += b"\n" + orjson.dumps(tool_calls, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(data).hexdigest()


def _redact_answer(answer: AnswerFields, redactor: Redactor) -> AnswerFields:
    text = redactor.text(answer.text) if answer.text is not None else None
    tool_calls = redactor.tool_calls(answer.tool_calls)
    error = redactor.text(answer.error) if answer.error is not None else None
    return answer.model_copy(
        update={
            "text": text,
            "tool_calls": tool_calls,
            "error": error,
            "sha256": answer_sha256(text, tool_calls),
        }
    )


def _without_text(answer: AnswerFields) -> AnswerFields:
    # An upstream's error message may quote the request: keep only its kind and status.
    error = None
    if answer.error_kind is not None:
        status = f" (HTTP {answer.status_code})" if answer.status_code else ""
        error = f"{answer.error_kind}{status}; text not stored"
    return answer.model_copy(update={"text": None, "tool_calls": None, "error": error})


def _texts(answer: AnswerFields) -> AnswerText:
    return AnswerText(text=answer.text, tool_calls=answer.tool_calls)


@dataclass(frozen=True)
class Protected:
    """What is stored of a pair, and the texts that go to scoring only (`store_text: false`)."""

    stored: PairCreate
    transient: PairTexts | None = None


def protect(pair: PairCreate, privacy: PrivacySettings, secrets: Sequence[str]) -> Protected:
    """The pair as the use case's privacy settings allow it to be stored."""
    redactor = redactor_for(
        tuple(privacy.redact), tuple(privacy.patterns.items()), tuple(sorted(secrets))
    )
    body = redactor.json_text(pair.request_body) if pair.request_body is not None else None
    primary = _redact_answer(pair.primary, redactor)
    candidate = _redact_answer(pair.candidate, redactor)
    noise = _redact_answer(pair.noise, redactor) if pair.noise is not None else None
    redacted = pair.model_copy(
        update={
            "request_body": body,
            "request_sha256": (
                hashlib.sha256(body.encode()).hexdigest()
                if body is not None
                else pair.request_sha256
            ),
            "primary": primary,
            "candidate": candidate,
            "noise": noise,
        }
    )
    if privacy.store_text:
        return Protected(redacted)
    texts = PairTexts(
        request_body=body,
        primary=_texts(primary),
        candidate=_texts(candidate),
        noise=_texts(noise) if noise is not None else None,
    )
    stored = redacted.model_copy(
        update={
            "request_body": None,
            "text_stored": False,
            "primary": _without_text(primary),
            "candidate": _without_text(candidate),
            "noise": _without_text(noise) if noise is not None else None,
        }
    )
    return Protected(stored, texts)
