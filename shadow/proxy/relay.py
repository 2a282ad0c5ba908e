"""The publisher process of `switchover serve`: shadow jobs leave the proxy over a socket.

Under `serve` the proxy's mirror thread does not publish to the queue itself. It writes each
job as one frame (a 4-byte big-endian length, then the job's JSON) to a Unix stream socket,
and the relay process (`python -m shadow.proxy.relay`), which the supervisor runs beside the
proxies, reads the frames and publishes the jobs with the same `Mirror` and
`CeleryPublisher` the proxy used to run. What the publish costs (Celery's message, the queue
file's insert and commit) is then paid in another process, on another core when one is free,
instead of by the proxy's own thread, which held the GIL against the event loop while it did.
`bench/proxy_overhead.py` measures the difference.

The supervisor owns the listening socket (in Linux's abstract namespace, so there is no file
to clean up) and hands it to each relay it starts: a proxy connects even while the relay is
being restarted, and what it writes then waits in the backlog. Jobs keep their guarantees:
the relay counts `switchover_shadow_enqueued_total` when a job is in the queue, and drops
(its buffer full, the queue at its bound) in `switchover_shadow_dropped_total` and the queue
file's `dropped` table. A proxy whose relay cannot take a job within the publish timeout
drops it and counts it (`relay_down`). A clean stop ends the proxies first, then the relay,
which reads every connection to its end and publishes what it holds before it exits; jobs
in its memory when it is SIGKILLed are lost, as they were in the proxy's buffer before.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import selectors
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shadow.jobs import ShadowJob
from shadow.settings import Settings, get_settings

if TYPE_CHECKING:  # the supervisor imports this module and must not create the metrics
    from shadow.proxy.mirror import Mirror

log = logging.getLogger(__name__)

_LENGTH = struct.Struct(">I")
_READ_BYTES = 256 * 1024
# When the supervisor is gone: how long the relay waits for the proxies to close their
# connections (they stop when they see it gone too) before it publishes and exits.
_ORPHAN_WAIT_S = 60.0
_STOP_WAIT_S = 30.0


class RelayDown(ConnectionError):
    """The relay did not take a job in time: dropped and counted as `relay_down`."""

    drop_reason = "relay_down"


def relay_address(supervisor_pid: int) -> str:
    """A fresh name for one `serve`'s relay socket (abstract namespace: no file)."""
    return f"switchover-relay-{supervisor_pid}-{os.urandom(4).hex()}"


def _abstract(name: str) -> str:
    return "\0" + name  # Linux: a leading NUL puts the address in the abstract namespace


def listening_relay_socket(name: str) -> socket.socket:
    """The socket the relay accepts the proxies' connections on (bound by the supervisor)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(_abstract(name))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


# ---------------------------------------------------------------- the proxy's side


class RelayClient:
    """The proxy mirror's publisher under `serve`: writes jobs to the relay process.

    Called from the mirror's one thread. A job counts as handed over when its frame is in the
    socket; the relay counts it enqueued once the queue has it. A failed write is tried once
    more on a fresh connection; after that the jobs are dropped (`RelayDown`).
    """

    # The mirror leaves the `enqueued` count to the relay, which knows when the queue took it.
    counts_enqueued = False

    def __init__(self, name: str, timeout_s: float) -> None:
        self._address = name
        self._timeout_s = timeout_s
        self._sock: socket.socket | None = None
        try:
            self._connect()  # at once: the relay waits for this connection when it stops
        except OSError as exc:
            log.warning("the relay does not answer yet (%s); trying again with the next job", exc)

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self._timeout_s)
        try:
            sock.connect(_abstract(self._address))
        except OSError:
            sock.close()
            raise
        self._sock = sock
        return sock

    def __call__(self, job: ShadowJob) -> None:
        """Hand one job to the relay; RelayDown when it cannot be written."""
        failure = self.publish_many([job])[0]
        if failure is not None:
            raise failure

    def publish_many(self, jobs: list[ShadowJob]) -> list[Exception | None]:
        """Write the jobs' frames in one send; for each, None when it is handed over."""
        data = b"".join(_frame(job) for job in jobs)
        error: OSError | None = None
        for _ in range(2):
            try:
                sock = self._sock or self._connect()
                sock.sendall(data)
                return [None for _ in jobs]
            except OSError as exc:
                # a frame cut in the middle is discarded by the relay with the connection
                error = exc
                self._close_socket()
        down = RelayDown(f"the relay did not take the jobs: {error}")
        return [down for _ in jobs]

    def _close_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def close(self) -> None:
        """End the connection (the mirror calls this after its last publish)."""
        self._close_socket()


class LoopRelay:
    """The proxy's short way to the relay: a job that needs no preparation, written by the loop.

    Most jobs go to their candidate as they are (the candidate serves the same API, no
    Responses history to write in). For those the event loop writes the frame itself, on a
    non-blocking connection of its own, instead of waking the mirror's thread: at concurrency
    50 that hand-off, the thread taking the GIL from the loop for every job, cost the proxy
    more CPU than the job's JSON and the write (bench/proxy_overhead.py). Only small jobs take
    this way (`MAX_BYTES` of request and answers): the JSON of a large one would hold the loop
    up. `write` says False when the connection is down or busy with an earlier frame; the
    mirror then takes the job on its thread, which waits for the relay or drops and counts it.
    A frame the socket took only in part is finished when the socket has room; if the
    connection fails first, the relay discards the part and the job goes to `fallback`.
    A raw socket rather than an asyncio transport: a transport's `write` swallows a broken
    connection (the job would be gone without a trace), `socket.send` raises at once.
    """

    MAX_BYTES = 64 * 1024
    _RETRY_S = 1.0

    def __init__(self, name: str, send_buffer_bytes: int | None = None) -> None:
        self._address = name
        self._send_buffer_bytes = send_buffer_bytes  # SO_SNDBUF; None: the kernel's default
        self._sock: socket.socket | None = None
        self._rest: tuple[ShadowJob, memoryview, Callable[[ShadowJob], object]] | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._tried_at = -math.inf

    async def connect(self) -> None:
        """Open the connection (a failure is logged; `write` tries again a second later)."""
        self._tried_at = time.monotonic()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        if self._send_buffer_bytes is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._send_buffer_bytes)
        try:
            await asyncio.get_running_loop().sock_connect(sock, _abstract(self._address))
        except OSError as exc:
            sock.close()
            log.warning("the relay does not answer the loop (%s); its jobs go by thread", exc)
            return
        self._sock = sock

    def fits(self, job: ShadowJob) -> bool:
        """Whether the job is small enough for the loop to write."""
        answer = job.primary.body if job.primary is not None else ""
        other = job.candidate.body if job.candidate is not None else ""
        return len(job.request_body) + len(answer) + len(other) <= self.MAX_BYTES

    def write(self, job: ShadowJob, fallback: Callable[[ShadowJob], object]) -> bool:
        """Write the job's frame now; False when the connection cannot take it.

        `fallback` gets the job back if the frame, taken in part, cannot be finished.
        """
        sock = self._sock
        if sock is None:
            self._reconnect()
            return False
        if self._rest is not None:
            return False  # the socket is full: the thread waits for room instead of the loop
        frame = _frame(job)
        try:
            sent = sock.send(frame)
        except BlockingIOError:
            return False
        except OSError as exc:
            self._lost(exc)
            return False
        if sent < len(frame):
            self._rest = (job, memoryview(frame)[sent:], fallback)
            asyncio.get_running_loop().add_writer(sock, self._finish)
        return True

    def _finish(self) -> None:
        """The socket has room again: write the rest of the frame taken in part."""
        assert self._sock is not None
        assert self._rest is not None
        job, rest, fallback = self._rest
        try:
            sent = self._sock.send(rest)
        except BlockingIOError:
            return
        except OSError as exc:
            self._lost(exc)
            return
        if sent < len(rest):
            self._rest = (job, rest[sent:], fallback)
            return
        asyncio.get_running_loop().remove_writer(self._sock)
        self._rest = None

    def _lost(self, exc: OSError) -> None:
        """The connection broke: the frame in part (if any) goes back, the next job reconnects."""
        log.warning("the loop's connection to the relay broke: %s", exc)
        if self._sock is not None:
            asyncio.get_running_loop().remove_writer(self._sock)
            self._sock.close()
            self._sock = None
        if self._rest is not None:
            job, _, fallback = self._rest
            self._rest = None
            fallback(job)

    def _reconnect(self) -> None:
        if self._connecting is not None and not self._connecting.done():
            return
        if time.monotonic() - self._tried_at >= self._RETRY_S:
            self._connecting = asyncio.get_running_loop().create_task(self.connect())

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Finish a frame taken in part (up to `timeout_s`, else it goes back), then close."""
        deadline = time.monotonic() + timeout_s
        while self._rest is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self._rest is not None:
            self._lost(OSError("the proxy is stopping and the relay has not read its frame"))
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _frame(job: ShadowJob) -> bytes:
    body = job.model_dump_json().encode()
    return _LENGTH.pack(len(body)) + body


# ---------------------------------------------------------------- the relay process


class Relay:
    """Accepts the proxies' connections and hands their jobs to a publishing `Mirror`."""

    def __init__(self, sock: socket.socket, mirror: Mirror) -> None:
        self._sock = sock
        self._mirror = mirror
        self._readers: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self.stopping = threading.Event()

    def connections(self) -> int:
        """How many proxies' connections are open."""
        with self._lock:
            return len(self._readers)

    def serve(self, parent: int) -> None:
        """Accept until told to stop (or orphaned), then read every connection to its end."""
        self._sock.setblocking(False)
        orphaned_at: float | None = None
        with selectors.DefaultSelector() as selector:
            selector.register(self._sock, selectors.EVENT_READ)
            while not self.stopping.is_set():
                if selector.select(timeout=0.2):
                    self._accept()
                if orphaned_at is None and os.getppid() != parent:
                    log.warning("the supervising `switchover serve` is gone; stopping")
                    orphaned_at = time.monotonic()
                if orphaned_at is not None and (
                    self.connections() == 0 or time.monotonic() - orphaned_at > _ORPHAN_WAIT_S
                ):
                    break
        while self._accept():
            pass  # connections still in the backlog: closing the socket would drop their jobs
        self._sock.close()
        deadline = time.monotonic() + (_STOP_WAIT_S if orphaned_at is None else _ORPHAN_WAIT_S)
        with self._lock:  # readers leave the set as their connections end
            readers = list(self._readers)
        for reader in readers:
            reader.join(max(0.0, deadline - time.monotonic()))
        if self.connections():
            log.warning("%s proxy connections still open at the stop", self.connections())
        self._mirror.close(timeout_s=_STOP_WAIT_S)

    def _accept(self) -> bool:
        """Take one waiting connection and start its reader; False when none was waiting."""
        try:
            conn, _ = self._sock.accept()
        except BlockingIOError:
            return False
        conn.setblocking(True)
        reader = threading.Thread(
            target=self._read, args=(conn,), name="switchover-relay-reader", daemon=True
        )
        with self._lock:
            self._readers.add(reader)
        reader.start()
        return True

    def _read(self, conn: socket.socket) -> None:
        """Frames from one proxy until it closes the connection (or a frame is unreadable)."""
        buffer = bytearray()
        try:
            while chunk := conn.recv(_READ_BYTES):
                buffer += chunk
                taken = self._take_frames(buffer)
                del buffer[:taken]
            if buffer:
                # the proxy writes that job again on a new connection, or counts it dropped
                log.warning("a proxy's connection ended inside a frame; that frame is discarded")
        except OSError as exc:
            log.warning("a proxy's connection failed: %s", exc)
        finally:
            conn.close()
            with self._lock:
                self._readers.discard(threading.current_thread())

    def _take_frames(self, buffer: bytearray) -> int:
        """Submit every whole frame at the start of `buffer`; how many bytes they took."""
        offset = 0
        while len(buffer) - offset >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(buffer, offset)
            end = offset + _LENGTH.size + length
            if len(buffer) < end:
                break
            try:
                job = ShadowJob.model_validate_json(bytes(buffer[offset + _LENGTH.size : end]))
            except ValueError as exc:
                log.error("a frame from a proxy is not a shadow job (%s bytes): %s", length, exc)
            else:
                self._mirror.submit(job)
            offset = end
        return offset


def run_relay(settings: Settings, sock: socket.socket, parent: int) -> None:
    """Publish the proxies' jobs until SIGTERM (or the supervisor is gone)."""
    from shadow.localqueue import LocalQueue
    from shadow.proxy.mirror import Mirror
    from shadow.proxy.publisher import CeleryPublisher

    journal = LocalQueue(settings.local_queue_path).record_dropped if settings.embedded else None
    mirror = Mirror(CeleryPublisher(settings), settings.shadow_buffer_size, journal=journal)
    relay = Relay(sock, mirror)

    def on_signal(signum: int, frame: Any) -> None:
        relay.stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    relay.serve(parent)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the relay process started by the supervisor."""
    parser = argparse.ArgumentParser(prog="python -m shadow.proxy.relay")
    parser.add_argument("--fd", type=int, required=True, help="the listening socket")
    args = parser.parse_args(argv)
    from shadow.serving import lower_priority
    from shadow.startup import configure_logging

    configure_logging("info")
    settings = get_settings()
    # like the workers: the relay takes the CPU the proxies leave
    lower_priority(settings.embedded_worker_nice, settings.embedded_worker_idle)
    run_relay(settings, socket.socket(fileno=args.fd), os.getppid())


if __name__ == "__main__":
    main()
