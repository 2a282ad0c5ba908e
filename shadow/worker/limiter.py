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

# Extend the leases still held (XX: a lease that expired meanwhile is not brought back).
_RENEW = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', now_ms + tonumber(ARGV[1]), ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 2)
return 1
"""


class RedisLimiter:
    """Slots shared by every process that uses the same Redis.

    A lease lives `lease_s` seconds (a few, not the length of a candidate call) and a
    background thread renews the leases this process holds, so a slot of a killed worker,
    or one whose release was lost while Redis restarted, comes back within seconds. A release
    that fails is tried again by that thread until it succeeds or the lease has expired.
    """

    def __init__(self, url: str, poll_s: float = 0.02, lease_s: float = 10.0) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._renew = self._redis.register_script(_RENEW)
        self._poll_s = poll_s
        self._lease_s = lease_s
        self._fallback = LocalLimiter()
        self._lock = threading.Lock()
        self._held: dict[str, dict[str, float]] = {}  # key name -> token -> held until
        self._unreleased: dict[tuple[str, str], float] = {}  # (name, token) -> lease end
        self._renewer: threading.Thread | None = None

    def _start_renewer(self) -> None:
        with self._lock:
            if self._renewer is None or not self._renewer.is_alive():
                self._renewer = threading.Thread(
                    target=self._renew_forever, name="switchover-limiter-renewal", daemon=True
                )
                self._renewer.start()

    def _renew_forever(self) -> None:
        while True:
            time.sleep(self._lease_s / 3)
            self.renew_once()

    def renew_once(self) -> None:
        """Extend this process's leases and retry the releases that failed."""
        now = time.monotonic()
        with self._lock:
            held = {
                name: [token for token, until in tokens.items() if until > now]
                for name, tokens in self._held.items()
            }
            unreleased = [key for key, end in self._unreleased.items() if end > now]
            self._unreleased = {key: self._unreleased[key] for key in unreleased}
        lease_ms = int(self._lease_s * 1000)
        try:
            for name, tokens in held.items():
                if tokens:
                    self._renew(keys=[name], args=[lease_ms, *tokens])
        except redis.RedisError as exc:
            log.info("limiter leases not renewed (Redis unreachable): %s", exc)
        for name, token in unreleased:
            with contextlib.suppress(redis.RedisError):
                self._redis.zrem(name, token)
                with self._lock:
                    self._unreleased.pop((name, token), None)

    def _release(self, name: str, token: str) -> None:
        with self._lock:
            self._held.get(name, {}).pop(token, None)
        try:
            self._redis.zrem(name, token)
        except redis.RedisError:
            # retried by the renewal thread; past its lease it is gone by itself anyway
            with self._lock:
                self._unreleased[(name, token)] = time.monotonic() + self._lease_s

    @contextmanager
    def slot(self, key: str, limit: int, lease_s: float, wait_s: float) -> Iterator[None]:
        """Hold one slot of `key` for the block (renewed for at most `lease_s` seconds)."""
        name = f"switchover:in-flight:{key}"
        token = uuid.uuid4().hex
        give_up = time.monotonic() + wait_s
        lease_ms = int(min(self._lease_s, lease_s) * 1000)
        try:
            while not self._acquire(keys=[name], args=[limit, lease_ms, token]):
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
        with self._lock:
            self._held.setdefault(name, {})[token] = time.monotonic() + lease_s
        self._start_renewer()
        try:
            yield
        finally:
            self._release(name, token)
