"""Running the service under uvicorn, in the foreground or a background thread; priorities."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# A body up to this size is joined to its head; a larger one follows it in a write of its own.
_JOIN_AT_MOST = 64 * 1024


class _OneWriteTransport:
    """A connection's transport that sends a response's head together with its first body bytes.

    uvicorn's httptools protocol writes the status line and headers in one call and the body
    in the next (`RequestResponseCycle.send`): two send(2) calls and two TCP segments, and the
    client may wake for each. This holds the head until the next write, or the end of this
    pass of the event loop for a response whose body comes later (a stream's), and sends both
    at once.
    """

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if len(data) > _JOIN_AT_MOST:  # a large body is not copied to join it
                self._transport.write(held)
                self._transport.write(data)
            else:
                self._transport.write(held + data)
        elif data[:5] == b"HTTP/" and data[-4:] == b"\r\n\r\n":
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Send a held head now (unless the connection is closing: nobody would read it)."""
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a response's head and body sent in one write."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = _OneWriteTransport(transport, self.loop)  # type: ignore[assignment]


def uvicorn_config(app: FastAPI, host: str, port: int, access_log: bool = False) -> uvicorn.Config:
    """The server settings the proxy is measured with: uvloop, httptools, no access log."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=OneWriteHttpToolsProtocol,
        ws="none",  # no WebSocket endpoint: an upgrade request is answered as plain HTTP
        log_level="info" if access_log else "warning",
        access_log=access_log,
        # idle keep-alive connections close after a minute; a body that trickles in is cut off
        # by the proxy's own read timeout (SWITCHOVER_BODY_READ_TIMEOUT_S)
        timeout_keep_alive=60,
        h11_max_incomplete_event_size=64 * 1024,
        backlog=4096,
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_thread(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve `app` from a daemon thread; yields the base URL, stops the server on exit."""
    port = port or free_port(host)
    server = uvicorn.Server(uvicorn_config(app, host, port))
    thread = threading.Thread(target=server.run, name="switchover-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the Switchover server did not start")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def lower_priority(nice: int, idle: bool) -> None:
    """Put every thread of this process below the proxies: `nice` added, SCHED_IDLE if `idle`.

    Linux keeps both per thread (sched(7), setpriority(2)): each thread running now is set,
    and the threads started later (the pool's, the model's) inherit the setting. A niced
    thread still runs out its time slice before a woken proxy thread gets the core; under
    SCHED_IDLE the woken thread preempts it at once.
    """
    threads = (
        [int(tid) for tid in os.listdir("/proc/self/task")] if sys.platform == "linux" else [0]
    )
    for tid in threads:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
            if idle and hasattr(os, "sched_setscheduler"):
                os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        except ProcessLookupError:
            continue  # the thread ended meanwhile
