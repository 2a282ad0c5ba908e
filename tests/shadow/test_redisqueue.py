"""The Redis channel that never holds a job only in a worker's memory (shadow/redisqueue.py).

Against a real Redis: the session's private one (tests/fixtures/services.py), which a test
here stops and starts at the instant kombu's own transport would lose the job.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Connection, Consumer, Exchange, Producer, Queue

from shadow.redisqueue import TRANSPORT, Channel
from tests.fixtures.services import PrivateRedis

pytestmark = pytest.mark.integration

SHADOW = Queue("shadow", Exchange("shadow", type="direct"), routing_key="shadow")
SCORING = Queue("scoring", Exchange("scoring", type="direct"), routing_key="scoring")


@pytest.fixture
def server(private_redis: PrivateRedis) -> Iterator[PrivateRedis]:
    """The private Redis, up and empty (database 7: the fault tests use 0)."""
    if not private_redis.running:
        private_redis.start()
    redis.Redis.from_url(_url(private_redis)).flushdb()
    yield private_redis
    if not private_redis.running:
        private_redis.start()


def _url(server: PrivateRedis) -> str:
    return server.url.rsplit("/", 1)[0] + "/7"


def _connection(server: PrivateRedis, visibility_timeout: float = 3600) -> Connection:
    return Connection(
        _url(server),
        transport=TRANSPORT,
        transport_options={"visibility_timeout": visibility_timeout},
    )


def _channel(connection: Connection) -> Channel:
    channel = connection.default_channel
    assert isinstance(channel, Channel)
    return channel


def _publish(connection: Connection, queue: Queue, bodies: list[str]) -> None:
    with connection.channel() as channel:
        producer = Producer(channel)
        for body in bodies:
            producer.publish(
                body,
                exchange=queue.exchange,
                routing_key=queue.routing_key,
                declare=[queue],
                serializer="json",
            )


def _keys(server: PrivateRedis) -> dict[str, Any]:
    """What Redis holds: each queue's and processing list's length, the unacked count."""
    client = redis.Redis.from_url(_url(server))
    sep = Channel.sep
    return {
        "shadow": client.llen("shadow"),
        "scoring": client.llen("scoring"),
        "shadow processing": client.llen(f"shadow{sep}processing"),
        "unacked": client.hlen("unacked"),
    }


def _drain(connection: Connection, queues: list[Queue], want: int, ack: bool = True) -> list[str]:
    """Consume until `want` bodies came (a generous deadline), acknowledging each if `ack`."""
    received: list[str] = []

    def on_message(body: str, message: Any) -> None:
        received.append(body)
        if ack:
            message.ack()

    with Consumer(connection, queues=queues, callbacks=[on_message], accept=["json"]):
        deadline = time.monotonic() + 60
        while len(received) < want and time.monotonic() < deadline:
            try:
                connection.drain_events(timeout=1)
            except TimeoutError:
                continue
    return received


def test_jobs_of_two_queues_are_all_delivered_once_and_leave_nothing_behind(server) -> None:
    """A worker of both queues (the default) gets every job of each, and no list keeps any."""
    with _connection(server) as connection:
        _publish(connection, SHADOW, [f"shadow-{n}" for n in range(20)])
        _publish(connection, SCORING, [f"scoring-{n}" for n in range(20)])
        received = _drain(connection, [SHADOW, SCORING], want=40)
    assert sorted(received) == sorted(
        [f"shadow-{n}" for n in range(20)] + [f"scoring-{n}" for n in range(20)]
    )
    assert _keys(server) == {"shadow": 0, "scoring": 0, "shadow processing": 0, "unacked": 0}


def test_a_job_waits_in_the_processing_list_until_its_taker_records_it(server) -> None:
    """Taken but not yet recorded: in the processing list, not lost; recorded: only unacked."""
    seen: dict[str, Any] = {}
    with _connection(server) as connection:
        _publish(connection, SHADOW, ["one"])
        channel = _channel(connection)
        record = channel.qos.append

        def look_then_record(message: Any, delivery_tag: str) -> None:
            seen["before"] = _keys(server)
            record(message, delivery_tag)
            seen["after"] = _keys(server)

        channel.qos.append = look_then_record  # type: ignore[method-assign]
        assert _drain(connection, [SHADOW], want=1, ack=False) == ["one"]
    assert seen["before"] == {"shadow": 0, "scoring": 0, "shadow processing": 1, "unacked": 0}
    assert seen["after"] == {"shadow": 0, "scoring": 0, "shadow processing": 0, "unacked": 1}


def test_redis_stopping_between_taking_and_recording_loses_no_job(server) -> None:
    """The instant kombu's transport loses a job: Redis stops after the take, before the record.

    The job stays in the processing list (the append-only file keeps it over the restart);
    the restore pass puts it back once it has been there a visibility timeout, and the next
    consumer gets it.
    """
    with _connection(server, visibility_timeout=1) as connection:
        _publish(connection, SHADOW, ["survivor"])
        channel = _channel(connection)
        record = channel.qos.append

        def stop_then_record(message: Any, delivery_tag: str) -> None:
            server.stop()
            record(message, delivery_tag)

        channel.qos.append = stop_then_record  # type: ignore[method-assign]
        with pytest.raises(redis.ConnectionError):
            _drain(connection, [SHADOW], want=1)
    server.start()
    assert _keys(server) == {"shadow": 0, "scoring": 0, "shadow processing": 1, "unacked": 0}

    with (
        _connection(server, visibility_timeout=1) as connection,
        Consumer(connection, queues=[SHADOW], accept=["json"]),  # consuming, not draining
    ):
        qos = _channel(connection).qos
        qos.restore_visible(interval=1)  # first seen
        assert _keys(server)["shadow processing"] == 1
        time.sleep(1.2)
        qos.restore_visible(interval=1)  # seen a visibility timeout ago: back in its queue
    assert _keys(server) == {"shadow": 1, "scoring": 0, "shadow processing": 0, "unacked": 0}
    with _connection(server) as connection:
        assert _drain(connection, [SHADOW], want=1) == ["survivor"]
    assert _keys(server) == {"shadow": 0, "scoring": 0, "shadow processing": 0, "unacked": 0}


def test_a_job_recorded_meanwhile_is_not_put_back(server) -> None:
    """The restore pass requeues only what is still in the processing list when it acts."""
    with _connection(server) as connection:
        channel = _channel(connection)
        client = channel.client
        processing = channel.processing_key("shadow")
        client.lpush(processing, b'{"stranded": 1}')
        assert channel.requeue_stranded(client, "shadow", older_than_s=0) == 0  # noted
        client.lrem(processing, 1, b'{"stranded": 1}')  # its taker recorded it after all
        assert channel.requeue_stranded(client, "shadow", older_than_s=0) == 0
        client.lpush(processing, b'{"stranded": 2}')
        channel.requeue_stranded(client, "shadow", older_than_s=0)
        assert channel.requeue_stranded(client, "shadow", older_than_s=0) == 1
    assert _keys(server) == {"shadow": 1, "scoring": 0, "shadow processing": 0, "unacked": 0}
    assert redis.Redis.from_url(_url(server)).hlen(f"shadow{Channel.sep}processing-seen") == 0
