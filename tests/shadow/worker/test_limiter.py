"""`max_in_flight` across processes, and what a Redis outage does to it."""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack

import pytest
import redis

from shadow.serving import free_port
from shadow.worker.limiter import RedisLimiter, SlotTimeout
from tests.conftest import wait_for
from tests.fixtures.services import PrivateRedis


def test_slots_are_shared_through_redis(private_redis: PrivateRedis) -> None:
    first, second = RedisLimiter(private_redis.url), RedisLimiter(private_redis.url)
    with first.slot("shared", 1, lease_s=5, wait_s=1), pytest.raises(SlotTimeout):
        with second.slot("shared", 1, lease_s=5, wait_s=0.1):
            pass
    with second.slot("shared", 1, lease_s=5, wait_s=0.1):
        pass


def test_an_unreachable_redis_caps_within_the_process() -> None:
    limiter = RedisLimiter(f"redis://127.0.0.1:{free_port()}/0")
    with limiter.slot("local", 1, lease_s=5, wait_s=1), pytest.raises(SlotTimeout):
        with limiter.slot("local", 1, lease_s=5, wait_s=0.1):
            pass
    with limiter.slot("local", 1, lease_s=5, wait_s=0.1):
        pass


def test_redis_going_away_while_a_slot_is_held_does_not_fail_the_job(
    private_redis: PrivateRedis,
) -> None:
    limiter = RedisLimiter(private_redis.url)
    try:
        with limiter.slot("outage", 2, lease_s=5, wait_s=1):
            private_redis.stop()
        with limiter.slot("outage", 2, lease_s=5, wait_s=1):
            pass
    finally:
        if not private_redis.running:
            private_redis.start()
    with limiter.slot("outage", 2, lease_s=5, wait_s=1):
        pass


def _leases(private_redis: PrivateRedis, key: str) -> int:
    client = redis.Redis.from_url(private_redis.url)
    try:
        return int(client.zcard(f"switchover:in-flight:{key}"))
    finally:
        client.close()


def test_a_held_slot_is_renewed_past_its_short_lease(private_redis: PrivateRedis) -> None:
    holder = RedisLimiter(private_redis.url, lease_s=0.6)
    other = RedisLimiter(private_redis.url, lease_s=0.6)
    with holder.slot("renewed", 1, lease_s=60, wait_s=1):
        # three leases long: only renewal keeps the slot taken
        with pytest.raises(SlotTimeout):
            with other.slot("renewed", 1, lease_s=60, wait_s=2):
                pass
    with other.slot("renewed", 1, lease_s=60, wait_s=1):
        pass


def test_three_redis_restarts_under_traffic_leave_no_leaked_lease(
    private_redis: PrivateRedis,
) -> None:
    """Releases lost while Redis restarts are retried or expire: every slot comes back."""
    key, limit = "restarts", 4
    limiter = RedisLimiter(private_redis.url)
    stop = threading.Event()
    calls = [0]

    def traffic() -> None:
        while not stop.is_set():
            # the caller's bound is a long candidate call, as in the worker
            with limiter.slot(key, limit, lease_s=600, wait_s=60):
                time.sleep(0.02)
                calls[0] += 1

    threads = [threading.Thread(target=traffic, daemon=True) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(3):
            time.sleep(0.5)
            private_redis.stop()
            time.sleep(0.3)
            private_redis.start()
        time.sleep(0.5)
    finally:
        if not private_redis.running:
            private_redis.start()
        stop.set()
        for thread in threads:
            thread.join(60)
    assert calls[0] > 0
    wait_for(lambda: _leases(private_redis, key) == 0, timeout=30)
    other = RedisLimiter(private_redis.url)
    with ExitStack() as held:
        for _ in range(limit):
            held.enter_context(other.slot(key, limit, lease_s=5, wait_s=1))
