"""Responses turns kept for a bounded time, so a later turn's history can be written in.

A turn is the conversation up to and including the primary's answer, as Responses input
items, under the response's id; never a header, never a key. Distributed proxies share them in
Redis; a single process (embedded mode) keeps them in memory.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Protocol

import orjson
import redis

_PREFIX = "switchover:turn:"


class TurnStore(Protocol):
    """Where turns live between requests."""

    def get(self, response_id: str) -> list[Any] | None:
        """The items up to and including that response, or None when unknown or expired."""

    def put(self, response_id: str, items: list[Any]) -> None:
        """Keep the items of a turn for the store's time to live."""


class MemoryTurns:
    """Turns in this process's memory, oldest evicted first beyond `max_turns`."""

    def __init__(self, ttl_s: float, max_turns: int = 10_000) -> None:
        self._ttl_s = ttl_s
        self._max = max_turns
        self._turns: OrderedDict[str, tuple[float, list[Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, response_id: str) -> list[Any] | None:
        """The items of a turn that has not expired."""
        with self._lock:
            found = self._turns.get(response_id)
            if found is None or found[0] < time.monotonic():
                return None
            return found[1]

    def put(self, response_id: str, items: list[Any]) -> None:
        """Keep a turn; the oldest ones go when the store is full."""
        with self._lock:
            self._turns[response_id] = (time.monotonic() + self._ttl_s, items)
            self._turns.move_to_end(response_id)
            while len(self._turns) > self._max:
                self._turns.popitem(last=False)


class RedisTurns:
    """Turns in Redis with an expiry, shared by every proxy."""

    def __init__(self, url: str, ttl_s: float) -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._ttl_ms = int(ttl_s * 1000)

    def get(self, response_id: str) -> list[Any] | None:
        """The items of a turn, None when unknown or expired."""
        raw = self._client.get(_PREFIX + response_id)
        return None if raw is None else list(orjson.loads(raw))

    def put(self, response_id: str, items: list[Any]) -> None:
        """Keep a turn for the time to live."""
        self._client.set(_PREFIX + response_id, orjson.dumps(items), px=self._ttl_ms)
