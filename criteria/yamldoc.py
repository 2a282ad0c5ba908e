"""YAML documents whose validation errors name the line: shared by the config and criteria."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import yaml
from pydantic import ValidationError

Path = tuple[Any, ...]


class YamlSyntaxError(ValueError):
    """The text is not YAML; the message is `source:line: not valid YAML: problem`."""


class _DuplicateKey(Exception):
    def __init__(self, path: Path, line: int) -> None:
        super().__init__()
        self.path, self.line = path, line


def _index(node: yaml.Node, path: Path, out: dict[Path, int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            # YAML keeps the last of two equal keys; here the second one is a mistake
            if isinstance(key, yaml.ScalarNode) and key.value != "<<":
                if key.value in seen:
                    raise _DuplicateKey((*path, key.value), key.start_mark.line + 1)
                seen.add(key.value)
            out[(*path, key.value)] = key.start_mark.line + 1
            _index(value, (*path, key.value), out)
    elif isinstance(node, yaml.SequenceNode):
        for position, item in enumerate(node.value):
            _index(item, (*path, position), out)


def load(text: str, source: str) -> tuple[Any, dict[Path, int]]:
    """The parsed document and the 1-based line of every key and item, by path."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or exc
        raise YamlSyntaxError(f"{source}:{line}: not valid YAML: {problem}") from None
    lines: dict[Path, int] = {}
    if root is not None:
        try:
            _index(root, (), lines)
        except _DuplicateKey as exc:
            field = ".".join(str(part) for part in exc.path)
            raise YamlSyntaxError(f"{source}:{exc.line}: {field}: duplicate key") from None
    return data, lines


def line_for(loc: Path, lines: Mapping[Path, int]) -> int:
    """The line of the deepest part of `loc` that exists in the document."""
    for end in range(len(loc), -1, -1):
        line = lines.get(tuple(loc[:end]))
        if line is not None:
            return line
    return 1


def problems(
    exc: ValidationError,
    lines: Mapping[Path, int],
    source: str,
    relocate: Callable[[dict[str, Any]], Path | None] | None = None,
) -> list[str]:
    """`source:line: field: reason` for each validation error; `relocate` may move its path."""
    found = []
    for error in exc.errors():
        loc: Path = tuple(error["loc"])
        moved = relocate(dict(error)) if relocate else None
        loc = moved if moved is not None else loc
        field = ".".join(str(part) for part in loc) or "(top level)"
        reason = error["msg"].removeprefix("Value error, ")
        found.append(f"{source}:{line_for(loc, lines)}: {field}: {reason}")
    return found
