"""The few top-level fields the proxy reads, taken from a large body without parsing it whole.

Parsing a body of megabytes builds millions of objects on the event loop (and holds them while
the answer is relayed); the proxy needs only `model` and `stream`. This scanner walks the top
level of the object, skips every other value by its brackets and strings (byte searches, no
objects built), and parses just the wanted values. Everything else is the upstream's to
validate, as for any body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

_WS = re.compile(rb"[ \t\n\r]*+")
_STRUCTURE = re.compile(rb'["\[\]{}]')
_SCALAR = re.compile(rb"[^,}\]\s]++")
_OPEN, _CLOSE = frozenset(b"[{"), frozenset(b"]}")
_BACKSLASH = 0x5C


class NotAnObject(ValueError):
    """The body is not a JSON object (or its top level is malformed)."""


@dataclass(frozen=True)
class Field:
    """A top-level value and where its text lies in the body."""

    value: Any
    start: int
    end: int


def _string_end(body: bytes, pos: int) -> int:
    """Just past the string opening at `pos` (memchr-fast `find`: strings are the bulk)."""
    at = pos + 1
    while True:
        quote = body.find(b'"', at)
        if quote < 0:
            raise NotAnObject("unterminated string")
        before = quote - 1
        while body[before] == _BACKSLASH:
            before -= 1
        if (quote - 1 - before) % 2 == 0:  # not escaped
            return quote + 1
        at = quote + 1


def _skip_value(body: bytes, pos: int) -> int:
    first = body[pos : pos + 1]
    if first == b'"':
        return _string_end(body, pos)
    if first in (b"{", b"["):
        depth = 0
        at = pos
        while (token := _STRUCTURE.search(body, at)) is not None:
            char = body[token.start()]
            if char == 0x22:  # '"'
                at = _string_end(body, token.start())
                continue
            at = token.end()
            if char in _OPEN:
                depth += 1
            elif char in _CLOSE:
                depth -= 1
                if depth == 0:
                    return at
        raise NotAnObject("unbalanced brackets")
    match = _SCALAR.match(body, pos)
    if match is None:
        raise NotAnObject(f"no value at byte {pos}")
    return match.end()


def top_level_fields(body: bytes, names: frozenset[str]) -> dict[str, Field]:
    """The values of the top-level keys in `names` (the last one of a repeated key)."""
    pos = _WS.match(body).end()  # type: ignore[union-attr]
    if body[pos : pos + 1] != b"{":
        raise NotAnObject("the body is not a JSON object")
    pos = _WS.match(body, pos + 1).end()  # type: ignore[union-attr]
    found: dict[str, Field] = {}
    if body[pos : pos + 1] == b"}":
        return found
    while True:
        if body[pos : pos + 1] != b'"':
            raise NotAnObject(f"no key at byte {pos}")
        key_end = _string_end(body, pos)
        key = body[pos:key_end]
        pos = _WS.match(body, key_end).end()  # type: ignore[union-attr]
        if body[pos : pos + 1] != b":":
            raise NotAnObject(f"no ':' at byte {pos}")
        start = _WS.match(body, pos + 1).end()  # type: ignore[union-attr]
        end = _skip_value(body, start)
        name = orjson.loads(key)
        if name in names:
            try:
                found[name] = Field(orjson.loads(body[start:end]), start, end)
            except orjson.JSONDecodeError as exc:
                raise NotAnObject(f"{name}: {exc}") from None
        pos = _WS.match(body, end).end()  # type: ignore[union-attr]
        separator = body[pos : pos + 1]
        if separator == b",":
            pos = _WS.match(body, pos + 1).end()  # type: ignore[union-attr]
        elif separator == b"}":
            if body[_WS.match(body, pos + 1).end() :]:  # type: ignore[union-attr]
                raise NotAnObject("data after the object")
            return found
        else:
            raise NotAnObject(f"no ',' or '}}' at byte {pos}")


def with_model(body: bytes, span: tuple[int, int] | None, model: str) -> bytes:
    """`body` with its top-level `model` (at `span`, None when absent) set to `model`."""
    value = orjson.dumps(model)
    if span is not None:
        return body[: span[0]] + value + body[span[1] :]
    opening = body.index(b"{") + 1
    rest = body[opening:]
    separator = b"," if rest.strip() != b"}" else b""
    return body[:opening] + b'"model":' + value + separator + rest
