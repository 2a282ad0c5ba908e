"""Structured answers: JSON validity and field agreement, tool calls."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from jsonschema.validators import validator_for

from evaluators.base import Values, answered, each
from evaluators.pair import PairView

_NOT_JSON = object()
_JSON_MODES = ("json_object", "json_schema")


def parse_json(text: str | None) -> Any:
    """The JSON value of `text`, or `_NOT_JSON`; strict, as an application's parser would be."""
    if text is None:
        return _NOT_JSON
    try:
        return orjson.loads(text.strip())
    except orjson.JSONDecodeError:
        return _NOT_JSON


def _structured(value: Any) -> bool:
    return isinstance(value, dict | list)


def _schema(pair: PairView) -> dict[str, Any] | None:
    response_format = pair.response_format or {}
    if response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema") or {}
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return schema if isinstance(schema, dict) else None


def json_valid(pair: PairView) -> float | None:
    """1/0: the candidate's answer is JSON (matching the asked schema); None when not asked."""
    mode = (pair.response_format or {}).get("type")
    primary = parse_json(pair.primary.text)
    if mode not in _JSON_MODES and not _structured(primary):
        return None
    candidate = parse_json(pair.candidate.text)
    if candidate is _NOT_JSON:
        return 0.0
    if mode == "json_object" and not isinstance(candidate, dict):
        return 0.0
    if mode not in _JSON_MODES and not _structured(candidate):
        return 0.0
    schema = _schema(pair)
    if schema is not None:
        validator = validator_for(schema)(schema)
        return 1.0 if validator.is_valid(candidate) else 0.0
    return 1.0


def _normalised_leaf(value: Any) -> Any:
    # bool before numbers: True == 1 in Python, not in JSON.
    if isinstance(value, bool) or value is None:
        return ("literal", value)
    if isinstance(value, int | float):
        return ("number", float(value))
    if isinstance(value, str):
        return ("string", " ".join(unicodedata.normalize("NFKC", value).casefold().split()))
    return ("empty", orjson.dumps(value))


def leaves(
    value: Any, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """(path, normalised value) for every scalar (and empty container) of a JSON value."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))
    else:
        yield path, _normalised_leaf(value)


def json_match(pair: PairView) -> float | None:
    """Share of the primary's JSON fields the candidate reproduces with the same value."""
    primary = parse_json(pair.primary.text)
    if not _structured(primary):
        return None
    candidate = parse_json(pair.candidate.text)
    if candidate is _NOT_JSON:
        return 0.0
    wanted = dict(leaves(primary))
    found = dict(leaves(candidate))
    matched = sum(1 for path, value in wanted.items() if found.get(path) == value)
    return matched / len(wanted)


class JsonEvaluator:
    """`quality.json_valid` and `quality.json_match` for JSON requests and JSON answers."""

    name = "json"
    metrics = ("quality.json_valid", "quality.json_match")

    def score(self, pairs: Sequence[PairView]) -> list[Values]:
        """Validity where JSON is expected, field agreement where the primary gave JSON."""
        return each(pairs, self._one)

    @staticmethod
    def _one(pair: PairView) -> Values:
        if not answered(pair):
            return {}
        figures = {"quality.json_valid": json_valid(pair), "quality.json_match": json_match(pair)}
        return {metric: value for metric, value in figures.items() if value is not None}


def _canonical_arguments(arguments: Any) -> Any:
    if isinstance(arguments, str):
        parsed = parse_json(arguments)
        if parsed is _NOT_JSON:
            return ("unparsed", arguments.strip())
        arguments = parsed
    return _canonical(arguments)


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((str(k), _canonical(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_canonical(item) for item in value)
    if isinstance(value, bool) or value is None:
        return ("literal", value)
    if isinstance(value, int | float):
        return ("number", float(value))
    return ("string", value)


def tool_calls_signature(calls: Sequence[dict[str, Any]]) -> list[str]:
    """The calls as comparable strings: name and canonical arguments, in a fixed order."""
    signature = []
    for call in calls:
        function = call.get("function") or {}
        name = str(function.get("name") or "")
        arguments = _canonical_arguments(function.get("arguments") or "{}")
        signature.append(name + "\x00" + repr(arguments))
    return sorted(signature)


class ToolCallEvaluator:
    """`quality.tool_call_match`: same tools called with equivalent arguments."""

    name = "tool_calls"
    metrics = ("quality.tool_call_match",)

    def score(self, pairs: Sequence[PairView]) -> list[Values]:
        """1.0 or 0.0 per pair that offered tools or where the primary called one."""
        return each(pairs, self._one)

    @staticmethod
    def _one(pair: PairView) -> Values:
        if not answered(pair) or not (pair.offers_tools or pair.primary.tool_calls):
            return {}
        same = tool_calls_signature(pair.primary.tool_calls) == tool_calls_signature(
            pair.candidate.tool_calls
        )
        return {"quality.tool_call_match": 1.0 if same else 0.0}
