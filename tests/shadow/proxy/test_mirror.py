"""The mirror buffer: the request path never waits on the broker, and every drop is counted."""

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from shadow.jobs import PrimaryCapture, ShadowJob
from shadow.proxy.mirror import Mirror

CAPTURE = PrimaryCapture(
    status_code=200,
    body='{"choices": [{"message": {"content": "hi"}}]}',
    latency_ms=12.5,
    first_byte_ms=12.0,
    request_id="req-1",
)


def make_job(use_case: str, number: int) -> ShadowJob:
    return ShadowJob(
        pair_id=f"pair-{number}",
        use_case=use_case,
        endpoint="chat",
        received_at=1_700_000_000.0 + number,
        request_body='{"model": "gpt-4o-mini", "messages": []}',
        stream=False,
        client_auth=False,
        primary=CAPTURE,
    )


def dropped(use_case: str, reason: str) -> float:
    labels = {"use_case": use_case, "reason": reason}
    return REGISTRY.get_sample_value("switchover_shadow_dropped_total", labels) or 0.0


def enqueued(use_case: str) -> float:
    labels = {"use_case": use_case}
    return REGISTRY.get_sample_value("switchover_shadow_enqueued_total", labels) or 0.0


@pytest.fixture
def use_case() -> str:
    """A use case name of its own, so the global metrics of other tests do not mix in."""
    return f"mirror-test-{uuid.uuid4().hex[:8]}"


class HeldBroker:
    """A publish function that blocks until released, as a stuck broker would."""

    def __init__(self) -> None:
        self.published: list[str] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, job: ShadowJob) -> None:
        self.entered.set()
        if not self.release.wait(10):
            raise TimeoutError("the test never released the broker")
        self.published.append(job.pair_id)


@pytest.fixture
def held() -> Iterator[HeldBroker]:
    broker = HeldBroker()
    yield broker
    broker.release.set()


def test_jobs_are_published_in_order_by_the_background_thread(use_case: str) -> None:
    published: list[tuple[str, str]] = []

    def publish(job: ShadowJob) -> None:
        published.append((job.pair_id, threading.current_thread().name))

    mirror = Mirror(publish, capacity=100)
    for number in range(50):
        assert mirror.submit(make_job(use_case, number))
    mirror.close()

    assert [pair_id for pair_id, _ in published] == [f"pair-{n}" for n in range(50)]
    assert {thread for _, thread in published} == {"switchover-mirror"}
    assert enqueued(use_case) == 50


def test_submit_never_blocks_while_the_broker_is_stuck(use_case: str, held: HeldBroker) -> None:
    mirror = Mirror(held, capacity=100)
    assert mirror.submit(make_job(use_case, 0))
    assert held.entered.wait(5)

    started = time.perf_counter()
    accepted = [mirror.submit(make_job(use_case, number)) for number in range(1, 1001)]
    elapsed = time.perf_counter() - started

    assert elapsed < 0.5
    assert accepted.count(True) == 100
    assert accepted[:100] == [True] * 100
    held.release.set()
    mirror.close()
    assert held.published == [f"pair-{n}" for n in range(101)]


def test_a_full_buffer_drops_the_job_and_counts_it(use_case: str, held: HeldBroker) -> None:
    mirror = Mirror(held, capacity=2)
    assert mirror.submit(make_job(use_case, 0))
    assert held.entered.wait(5)
    assert mirror.submit(make_job(use_case, 1))
    assert mirror.submit(make_job(use_case, 2))
    before = dropped(use_case, "buffer_full")

    assert mirror.submit(make_job(use_case, 3)) is False
    assert mirror.submit(make_job(use_case, 4)) is False

    assert dropped(use_case, "buffer_full") - before == 2
    assert dropped(use_case, "broker_error") == 0
    held.release.set()
    mirror.close()
    assert held.published == ["pair-0", "pair-1", "pair-2"]


def test_a_broker_error_is_counted_and_later_jobs_are_still_published(use_case: str) -> None:
    published: list[str] = []

    def publish(job: ShadowJob) -> None:
        if job.pair_id == "pair-1":
            raise ConnectionError("broker unreachable")
        published.append(job.pair_id)

    before = dropped(use_case, "broker_error")
    mirror = Mirror(publish, capacity=10)
    for number in range(4):
        assert mirror.submit(make_job(use_case, number))
    mirror.close()

    assert published == ["pair-0", "pair-2", "pair-3"]
    assert dropped(use_case, "broker_error") - before == 1
    assert dropped(use_case, "buffer_full") == 0
    assert enqueued(use_case) == 3


def test_close_publishes_what_is_buffered_then_stops_the_thread(use_case: str) -> None:
    published: list[str] = []

    def slow_publish(job: ShadowJob) -> None:
        time.sleep(0.005)
        published.append(job.pair_id)

    mirror = Mirror(slow_publish, capacity=100)
    for number in range(20):
        assert mirror.submit(make_job(use_case, number))
    assert mirror.alive

    mirror.close()

    assert published == [f"pair-{n}" for n in range(20)]
    assert not mirror.alive


def test_proxies_started_one_after_another_in_a_process_all_publish(redis_url: str) -> None:
    """kombu pools producers per broker URL for the whole process: a mirror that stops gives
    its producer back, so the 11th mirror on the same broker is not left waiting for ever."""
    import redis

    from shadow.proxy.publisher import CeleryPublisher
    from shadow.settings import Settings

    queue = f"test.{uuid.uuid4().hex[:8]}"
    settings = Settings(broker_url=redis_url, queue=queue)
    for number in range(15):  # the pool's limit is 10
        mirror = Mirror(CeleryPublisher(settings), capacity=10)
        mirror.submit(make_job("mirror-pool", number))
        mirror.close()
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.llen(queue) == 15
    finally:
        client.delete(queue)
        client.close()


class BatchBroker:
    """A publisher that takes jobs in batches and refuses the ones named in `refuse`."""

    def __init__(self, refuse: set[str]) -> None:
        self.batches: list[list[str]] = []
        self.refuse = refuse

    def __call__(self, job: ShadowJob) -> None:
        raise AssertionError("a batch publisher is called with publish_many")

    def publish_many(self, jobs: list[ShadowJob]) -> list[Exception | None]:
        self.batches.append([job.pair_id for job in jobs])
        return [RuntimeError("refused") if j.pair_id in self.refuse else None for j in jobs]


def test_a_burst_goes_out_in_batches_and_each_job_is_counted(use_case: str) -> None:
    broker = BatchBroker(refuse={"pair-3"})
    mirror = Mirror(broker, capacity=100)
    for number in range(40):
        assert mirror.submit(make_job(use_case, number))
    mirror.close()
    published = [pair_id for batch in broker.batches for pair_id in batch]
    assert published == [f"pair-{n}" for n in range(40)]  # once each, in order
    assert len(broker.batches) < 40
    assert enqueued(use_case) == 39
    assert dropped(use_case, "broker_error") == 1
