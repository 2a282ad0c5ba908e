"""The embedded mode's queue file: a job leaves it only when acknowledged, never twice."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from kombu import Connection

from shadow.jobs import MIRROR_PAIR, PrimaryCapture, ShadowJob
from shadow.localqueue import SCHEME, LocalQueue, QueueFull
from shadow.proxy.publisher import CeleryPublisher
from shadow.settings import Settings
from tests.conftest import wait_for

# A consumer that takes one job of the file `sys.argv[1]`, says so, and is SIGKILLed.
TAKER = (
    "import os, signal, sys\n"
    "from kombu import Connection\n"
    "from shadow.localqueue import SCHEME\n"
    "c = Connection(f'{SCHEME}://localhost/', transport_options={'path': sys.argv[1]})\n"
    "c.SimpleQueue('jobs').get(timeout=5)\n"
    "print('taken', flush=True)\n"
    "os.kill(os.getpid(), signal.SIGKILL)\n"
)


def _connection(path: Path, **bounds: int) -> Connection:
    options = {"path": str(path), "bounds": bounds, "polling_interval": 0.01}
    return Connection(f"{SCHEME}://localhost/", transport_options=options)


def test_a_job_is_deleted_only_when_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    books = LocalQueue(path)
    with _connection(path) as connection:
        jobs = connection.SimpleQueue("jobs")
        jobs.put({"n": 1})
        message = jobs.get(timeout=5)
        assert message.payload == {"n": 1}
        assert books.waiting("jobs") == 1
        message.ack()
        assert books.waiting("jobs") == 0


def test_a_clean_close_gives_unacknowledged_jobs_back_once(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    with _connection(path) as connection:
        jobs = connection.SimpleQueue("jobs")
        jobs.put({"n": 1})
        jobs.get(timeout=5)  # taken, never acknowledged
        jobs.close()
    books = LocalQueue(path)
    assert books.waiting("jobs") == 1  # back, not copied
    with _connection(path) as connection:
        jobs = connection.SimpleQueue("jobs")
        again = jobs.get(timeout=5)
        assert again.payload == {"n": 1}
        again.reject(requeue=True)
        assert books.waiting("jobs") == 1
        jobs.get(timeout=5).reject(requeue=False)
        assert books.waiting("jobs") == 0


def test_jobs_held_by_a_killed_consumer_come_back(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    with _connection(path) as connection:
        connection.SimpleQueue("jobs").put({"n": 7})
    done = subprocess.run([sys.executable, "-c", TAKER, str(path)], check=False, timeout=60)
    assert done.returncode == -9
    books = LocalQueue(path)
    with _connection(path) as connection:
        jobs = connection.SimpleQueue("jobs")
        with pytest.raises(jobs.Empty):
            jobs.get(timeout=0.2)  # held by the dead process
        assert books.release_orphans() == 1
        message = jobs.get(timeout=5)
        assert message.payload == {"n": 7}
        message.ack()


def test_a_killed_consumer_nobody_reaped_holds_nothing(tmp_path: Path) -> None:
    """A worker killed with its supervisor is an orphan; a PID 1 that does not reap keeps it
    a zombie, which `kill(pid, 0)` still finds. Its jobs come back all the same."""
    path = tmp_path / "queue.db"
    with _connection(path) as connection:
        connection.SimpleQueue("jobs").put({"n": 7})
    # not waited for: the killed process stays a zombie, this test its parent
    process = subprocess.Popen(
        [sys.executable, "-c", TAKER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "taken"
        stat = Path(f"/proc/{process.pid}/stat")
        wait_for(lambda: stat.read_text().rsplit(")", 1)[1].split()[0] == "Z", timeout=60)
        books = LocalQueue(path)
        assert books.release_orphans() == 1
        with _connection(path) as connection:
            message = connection.SimpleQueue("jobs").get(timeout=5)
            assert message.payload == {"n": 7}
            message.ack()
    finally:
        process.wait(timeout=60)


def test_the_bound_refuses_jobs_beyond_it(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    with _connection(path, jobs=3) as connection:
        jobs = connection.SimpleQueue("jobs")
        for n in range(3):
            jobs.put({"n": n})
        with pytest.raises(QueueFull):
            jobs.put({"n": 3})
        jobs.get(timeout=5).ack()
        jobs.put({"n": 4})  # room again once one is done
    assert LocalQueue(path).waiting("jobs") == 3


def test_publishers_on_two_connections_share_the_bound(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    with _connection(path, jobs=3) as first, _connection(path, jobs=3) as second:
        a, b = first.SimpleQueue("jobs"), second.SimpleQueue("jobs")
        a.put({"n": 0})
        b.put({"n": 1})
        a.put({"n": 2})
        for queue in (a, b):
            with pytest.raises(QueueFull):
                queue.put({"n": 3})
    assert LocalQueue(path).waiting("jobs") == 3


def test_a_file_from_before_the_length_table_is_counted_once(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    with _connection(path) as connection:
        for n in range(3):
            connection.SimpleQueue("jobs").put({"n": n})
    with sqlite3.connect(path) as old:  # as an earlier version left it
        old.executescript(
            "DROP TRIGGER messages_counted; DROP TRIGGER messages_uncounted; DROP TABLE lengths;"
        )
    with _connection(path, jobs=4) as connection:
        jobs = connection.SimpleQueue("jobs")
        jobs.put({"n": 3})
        with pytest.raises(QueueFull):
            jobs.put({"n": 4})
        jobs.get(timeout=5).ack()
        jobs.put({"n": 5})
    assert LocalQueue(path).waiting("jobs") == 4


def test_drops_are_added_up_in_the_file(tmp_path: Path) -> None:
    books = LocalQueue(tmp_path / "queue.db")
    books.record_dropped({("chat", "queue_full"): 2})
    books.record_dropped({("chat", "queue_full"): 3, ("chat", "buffer_full"): 1})
    assert LocalQueue(tmp_path / "queue.db").dropped() == {
        ("chat", "queue_full"): 5,
        ("chat", "buffer_full"): 1,
    }


def test_the_proxy_publisher_refuses_at_the_bound_and_publishes_again_after(
    tmp_path: Path,
) -> None:
    """The publisher's path: a refusal, then refusals before any message is built, then room."""
    settings = Settings(database_url=f"sqlite:///{tmp_path}/switchover.db", shadow_buffer_size=2)
    publish = CeleryPublisher(settings)
    books = LocalQueue(settings.local_queue_path)
    jobs = [_job(n) for n in range(5)]
    publish(jobs[0])
    publish(jobs[1])
    for job in jobs[2:4]:
        with pytest.raises(QueueFull):
            publish(job)
    assert books.waiting(settings.queue) == 2
    with _connection(settings.local_queue_path) as connection:
        taken = connection.SimpleQueue(settings.queue).get(timeout=5)
        assert taken.headers["task"] == MIRROR_PAIR
        assert taken.payload[0][0]["pair_id"] == jobs[0].pair_id
        taken.ack()
    publish(jobs[4])
    publish.close()
    assert books.waiting(settings.queue) == 2


def _job(n: int) -> ShadowJob:
    return ShadowJob(
        pair_id=f"pair-{n}",
        use_case="default",
        endpoint="chat.completions",
        received_at=0.0,
        request_body='{"model": "m", "messages": []}',
        stream=False,
        client_auth=False,
        primary=PrimaryCapture(status_code=200, body="{}", latency_ms=1.0, first_byte_ms=1.0),
    )


def test_jobs_published_together_are_one_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the bound the rest are refused one by one; any other error leaves none of them."""
    settings = Settings(database_url=f"sqlite:///{tmp_path}/switchover.db", shadow_buffer_size=3)
    publish = CeleryPublisher(settings)
    books = LocalQueue(settings.local_queue_path)
    outcomes = publish.publish_many([_job(n) for n in range(5)])
    assert [type(outcome) for outcome in outcomes] == [*[type(None)] * 3, QueueFull, QueueFull]
    assert books.waiting(settings.queue) == 3

    with _connection(settings.local_queue_path) as connection:
        for _ in range(3):
            connection.SimpleQueue(settings.queue).get(timeout=5).ack()
    send = CeleryPublisher._send

    def fail_on_the_second(self: CeleryPublisher, producer: object, job: ShadowJob) -> None:
        if job.pair_id == "pair-11":
            raise OSError("disk I/O error")
        send(self, producer, job)

    monkeypatch.setattr(CeleryPublisher, "_send", fail_on_the_second)
    outcomes = publish.publish_many([_job(n) for n in (10, 11, 12)])
    assert all(isinstance(outcome, OSError) for outcome in outcomes)
    assert books.waiting(settings.queue) == 0  # the first was rolled back with the rest
    monkeypatch.undo()
    assert publish.publish_many([_job(13), _job(14)]) == [None, None]
    publish.close()
    assert books.waiting(settings.queue) == 2
