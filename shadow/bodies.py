"""JSON request bodies as bytes, at every depth the proxy accepts.

orjson parses documents nested up to 1,024 levels but writes only 255, and the standard
library's encoder recurses once per level; a legal request nested deeper than either is still
a request to forward, mirror and store. So the fast writer goes first and an iterative one,
with no depth limit, takes what it refuses.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# Parts that name something to fetch rather than carry it (`image_url`, `file_url`, Responses'
# `input_image`): a self-hosted server fetches them from inside its own network, so a client
# could make it reach internal addresses (`shadow.forward_urls`). `data:` URLs carry their
# content and are not fetched.


class _Piece(str):
    """Already-encoded text on the iterative writer's stack."""


def _dumps_iteratively(value: Any) -> bytes:
    out: list[str] = []
    stack: list[Any] = [value]
    while stack:
        node = stack.pop()
        if type(node) is _Piece:
            out.append(node)
        elif isinstance(node, dict):
            parts: list[Any] = [_Piece("{")]
            for index, (key, item) in enumerate(node.items()):
                separator = "," if index else ""
                parts += [_Piece(f"{separator}{json.dumps(str(key), ensure_ascii=False)}:"), item]
            parts.append(_Piece("}"))
            stack.extend(reversed(parts))
        elif isinstance(node, list | tuple):
            parts = [_Piece("[")]
            for index, item in enumerate(node):
                parts += [_Piece(","), item] if index else [item]
            parts.append(_Piece("]"))
            stack.extend(reversed(parts))
        else:
            out.append(json.dumps(node, ensure_ascii=False))
    return "".join(out).encode()


def dumps_body(value: Any) -> bytes:
    """`value` as compact JSON bytes, however deeply it nests."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return _dumps_iteratively(value)


_URL_KEYS = frozenset({"url", "image_url", "file_url", "audio_url", "video_url"})


def _fetchable(value: str) -> bool:
    scheme, sep, _ = value.partition(":")
    return bool(sep) and scheme.lower() != "data" and "://" in value[:64]


def has_fetchable_url(body: bytes, payload: dict[str, Any]) -> bool:
    """Whether any `url`-like field of the request names something to fetch."""
    if b"://" not in body:
        return False  # the common case: no URL anywhere, nothing to walk
    # An explicit stack: a body may legally nest a thousand levels deep.
    stack: list[Any] = [payload]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _URL_KEYS and isinstance(value, str) and _fetchable(value):
                    return True
                if isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(item for item in node if isinstance(item, dict | list))
    return False
