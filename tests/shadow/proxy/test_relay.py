"""The relay: jobs written by a proxy's mirror over a Unix socket and published in another process.

Here the relay runs in a thread of the test, on a real socket, in front of a publish function
that records what reaches it; tests/shadow/test_supervisor.py runs it as `serve`'s process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from shadow.jobs import ShadowJob
from shadow.proxy.mirror import Mirror
from shadow.proxy.relay import (
    LoopRelay,
    Relay,
    RelayClient,
    RelayDown,
    listening_relay_socket,
    relay_address,
)
from tests.conftest import wait_for
from tests.shadow.proxy.test_mirror import dropped, enqueued, make_job


class Recorder:
    """A publish function that keeps every job it is given, in order."""

    def __init__(self) -> None:
        self.jobs: list[ShadowJob] = []
        self._lock = threading.Lock()

    def __call__(self, job: ShadowJob) -> None:
        with self._lock:
            self.jobs.append(job)


@dataclass
class Running:
    name: str
    relay: Relay
    recorder: Recorder
    thread: threading.Thread

    def stop(self) -> None:
        self.relay.stopping.set()
        self.thread.join(60)
        assert not self.thread.is_alive()


@pytest.fixture
def use_case() -> str:
    return f"relay-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def running() -> Iterator[Running]:
    """A relay serving on a fresh socket, publishing to a `Recorder` through a real `Mirror`."""
    name = relay_address(os.getpid())
    recorder = Recorder()
    relay = Relay(listening_relay_socket(name), Mirror(recorder, 1000))
    thread = threading.Thread(target=relay.serve, args=(os.getppid(),), daemon=True)
    thread.start()
    served = Running(name, relay, recorder, thread)
    yield served
    if thread.is_alive():
        served.stop()


def _jobs(use_case: str, n: int, body_bytes: int = 0) -> list[ShadowJob]:
    jobs = [make_job(use_case, i) for i in range(n)]
    if body_bytes:
        big = '{"model": "m", "messages": [{"role": "user", "content": "%s"}]}' % ("x" * body_bytes)
        jobs = [job.model_copy(update={"request_body": big}) for job in jobs]
    return jobs


def test_jobs_written_by_the_client_reach_the_publisher_whole_and_in_order(
    running: Running, use_case: str
) -> None:
    client = RelayClient(running.name, timeout_s=5)
    sent = _jobs(use_case, 5) + _jobs(use_case, 3, body_bytes=700_000)  # frames over many reads
    assert client.publish_many(sent[:4]) == [None] * 4
    for job in sent[4:]:
        client(job)
    wait_for(lambda: len(running.recorder.jobs) == len(sent), timeout=30)
    assert running.recorder.jobs == sent
    client.close()
    running.stop()


def test_the_client_leaves_the_enqueued_count_to_the_relay(running: Running, use_case: str) -> None:
    client = RelayClient(running.name, timeout_s=5)
    mirror = Mirror(client, 100)
    for job in _jobs(use_case, 4):
        assert mirror.submit(job)
    mirror.close()
    wait_for(lambda: len(running.recorder.jobs) == 4, timeout=30)
    # counted once, by the relay's mirror, when its publisher took them
    assert enqueued(use_case) == 4


def test_a_stop_reads_every_connection_to_its_end_then_publishes_what_it_holds(
    running: Running, use_case: str
) -> None:
    client = RelayClient(running.name, timeout_s=5)
    client.publish_many(_jobs(use_case, 50))
    running.relay.stopping.set()  # the supervisor stops the relay only after the proxies
    time.sleep(0.5)
    assert running.thread.is_alive(), "stopped while a proxy's connection was still open"
    client.publish_many(_jobs(use_case, 10))
    client.close()
    running.thread.join(60)
    assert not running.thread.is_alive()
    assert len(running.recorder.jobs) == 60


def test_a_frame_cut_by_the_connection_closing_is_discarded_and_logged(
    running: Running, use_case: str, caplog: pytest.LogCaptureFixture
) -> None:
    whole, cut = (job.model_dump_json().encode() for job in _jobs(use_case, 2))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.connect("\0" + running.name)
        caplog.set_level(logging.WARNING, logger="shadow.proxy.relay")
        raw.sendall(struct.pack(">I", len(whole)) + whole + struct.pack(">I", len(cut)) + cut[:9])
    wait_for(lambda: "ended inside a frame" in caplog.text, timeout=30)
    running.stop()
    assert [job.pair_id for job in running.recorder.jobs] == ["pair-0"]


def test_a_frame_that_is_not_a_job_is_logged_and_the_next_one_kept(
    running: Running, use_case: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="shadow.proxy.relay")
    job = _jobs(use_case, 1)[0].model_dump_json().encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.connect("\0" + running.name)
        raw.sendall(struct.pack(">I", 7) + b"{broken" + struct.pack(">I", len(job)) + job)
    wait_for(lambda: len(running.recorder.jobs) == 1, timeout=30)
    assert "not a shadow job" in caplog.text
    running.stop()


def test_without_a_relay_the_jobs_are_dropped_and_counted_as_relay_down(use_case: str) -> None:
    client = RelayClient(relay_address(os.getpid()), timeout_s=1)  # nothing listens there
    outcomes = client.publish_many(_jobs(use_case, 2))
    assert all(isinstance(outcome, RelayDown) for outcome in outcomes)
    mirror = Mirror(client, 100)
    mirror.submit(_jobs(use_case, 1)[0])
    mirror.close()
    assert dropped(use_case, "relay_down") == 1
    assert enqueued(use_case) == 0


def test_a_relay_that_stops_reading_makes_the_client_give_up_within_its_timeout(
    use_case: str,
) -> None:
    name = relay_address(os.getpid())
    with listening_relay_socket(name):  # accepted by the kernel, never read by anyone
        client = RelayClient(name, timeout_s=0.5)
        started = time.monotonic()
        outcomes = client.publish_many(_jobs(use_case, 4, body_bytes=2_000_000))
        assert all(isinstance(outcome, RelayDown) for outcome in outcomes)
        assert time.monotonic() - started < 30  # two tries of 0.5 s each, with a wide margin


def test_small_jobs_ready_as_they_are_are_written_by_the_loop_and_large_ones_by_the_thread(
    running: Running, use_case: str
) -> None:
    thread_side = Recorder()
    small = _jobs(use_case, 5)
    large = _jobs(use_case, 1, body_bytes=LoopRelay.MAX_BYTES)[0].model_copy(
        update={"pair_id": "large"}
    )

    async def scenario() -> None:
        loop_relay = LoopRelay(running.name)
        await loop_relay.connect()
        mirror = Mirror(thread_side, 100, direct=loop_relay)
        for job in [*small, large]:
            assert mirror.submit(job)
        await loop_relay.aclose()
        mirror.close()

    asyncio.run(scenario())
    wait_for(lambda: len(running.recorder.jobs) == len(small), timeout=30)
    assert running.recorder.jobs == small
    # the large job's JSON would have held the loop up: the mirror's thread took it
    assert [job.pair_id for job in thread_side.jobs] == ["large"]
    assert enqueued(use_case) == 5 + 1  # the relay counted five; this mirror's publisher one


def test_a_job_the_preparer_must_change_goes_by_the_thread(use_case: str) -> None:
    class Preparer:
        def ready_as_is(self, job: ShadowJob) -> bool:
            return job.pair_id != "pair-1"

        def __call__(self, job: ShadowJob) -> ShadowJob:
            return job

    class Loop:
        def __init__(self) -> None:
            self.jobs: list[str] = []

        def fits(self, job: ShadowJob) -> bool:
            return True

        def write(self, job: ShadowJob, fallback: object) -> bool:
            self.jobs.append(job.pair_id)
            return True

    thread_side, loop = Recorder(), Loop()
    mirror = Mirror(thread_side, 100, prepare=Preparer(), direct=loop)
    for job in _jobs(use_case, 3):
        assert mirror.submit(job)
    mirror.close()
    assert loop.jobs == ["pair-0", "pair-2"]
    assert [job.pair_id for job in thread_side.jobs] == ["pair-1"]


def test_without_a_relay_the_loop_leaves_every_job_to_the_thread(
    use_case: str, caplog: pytest.LogCaptureFixture
) -> None:
    thread_side = Recorder()

    async def scenario() -> None:
        loop_relay = LoopRelay(relay_address(os.getpid()))  # nothing listens there
        await loop_relay.connect()
        mirror = Mirror(thread_side, 100, direct=loop_relay)
        for job in _jobs(use_case, 3):
            assert mirror.submit(job)
        await loop_relay.aclose()
        mirror.close()

    asyncio.run(scenario())
    assert len(thread_side.jobs) == 3
    assert "its jobs go by thread" in caplog.text


def test_a_frame_the_socket_took_in_part_goes_back_when_the_connection_breaks(
    use_case: str,
) -> None:
    name = relay_address(os.getpid())
    listener = listening_relay_socket(name)  # never accepted: the socket fills up
    returned: list[ShadowJob] = []
    jobs = _jobs(use_case, 40, body_bytes=LoopRelay.MAX_BYTES // 2)

    async def scenario() -> list[bool]:
        # a small send buffer: the kernel takes a frame in pieces, so one is left in part
        loop_relay = LoopRelay(name, send_buffer_bytes=4096)
        await loop_relay.connect()
        taken = [loop_relay.write(job, returned.append) for job in jobs]
        listener.close()  # the connection in its backlog is reset
        deadline = time.monotonic() + 30
        while not returned and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await loop_relay.aclose()
        return taken

    taken = asyncio.run(scenario())
    assert not all(taken), "the socket never filled up"
    first_refused = taken.index(False)
    # the last job taken went in part; when the connection broke it came back whole
    assert [job.pair_id for job in returned] == [jobs[first_refused - 1].pair_id]
    assert not any(taken[first_refused:])  # nothing more while that frame was unfinished
