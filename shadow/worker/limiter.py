"""`max_in_flight`: a cap on concurrent candidate calls per use case.

With Redis available the cap holds across every worker process and machine (a counting
semaphore of leases that expire, so a killed worker cannot hold a slot for ever); without it
the cap holds within one process, which is what embedded mode runs. While a configured Redis
is unreachable, the cap falls back to holding within each process: a job must not fail (and
be lost) because its limiter is down.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

import redis

log = logging.getLogger(__name__)


class SlotTimeout(TimeoutError):
    """No slot became free in time."""


class Limiter(Protocol):
    """Hands out at most `limit` concurrent slots per key."""

    def slot(
        self, key: str, limit: int, lease_s: float, wait_s: float
    ) -> AbstractContextManager[None]:
        """Hold one slot of `key` for the duration of the block."""
        ...


class LocalLimiter:
    """Slots shared by the threads of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._semaphores: dict[tuple[str, int], threading.BoundedSemaphore] = {}

    @contextmanager
    def slot(self, key: str, limit: int, lease_s: float, wait_s: float) -> Iterator[None]:
        with self._lock:
            semaphore = self._semaphores.setdefault((key, limit), threading.BoundedSemaphore(limit))
        if not semaphore.acquire(timeout=wait_s):
            raise SlotTimeout(f"no free candidate slot for {key!r} within {wait_s:g} s")
        try:
            yield
        finally:
            semaphore.release()


# Drop expired leases, then take a slot if fewer than the limit are held. Redis' own clock is
# used so that workers on machines with skewed clocks agree.
_ACQUIRE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
  return 1
end
return 0
"""


class RedisLimiter:
    """Slots shared by every process that uses the same Redis."""

    def __init__(self, url: str, poll_s: float = 0.02) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._poll_s = poll_s
        self._fallback = LocalLimiter()

    @contextmanager
    def slot(self, key: str, limit: int, lease_s: float, wait_s: float) -> Iterator[None]:
        name = f"switchover:in-flight:{key}"
        token = uuid.uuid4().hex
        give_up = time.monotonic() + wait_s
        try:
            while not self._acquire(keys=[name], args=[limit, int(lease_s * 1000), token]):
                if time.monotonic() > give_up:
                    raise SlotTimeout(f"no free candidate slot for {key!r} within {wait_s:g} s")
                time.sleep(self._poll_s)
        except redis.RedisError as exc:
            log.warning("limiter Redis unreachable, capping %r in this process: %s", key, exc)
            shared = False
        else:
            shared = True
        if not shared:
            with self._fallback.slot(key, limit, lease_s, max(give_up - time.monotonic(), 0)):
                yield
            return
        try:
            yield
        finally:
            # Unreachable now, the lease still expires by itself.
            with contextlib.suppress(redis.RedisError):
                self._redis.zrem(name, token)
