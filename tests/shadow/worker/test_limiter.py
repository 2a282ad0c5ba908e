"""`max_in_flight` across processes, and what a Redis outage does to it."""

from __future__ import annotations

import pytest

from shadow.serving import free_port
from shadow.worker.limiter import RedisLimiter, SlotTimeout
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
