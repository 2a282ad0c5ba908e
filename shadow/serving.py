"""Running the service under uvicorn, in the foreground or in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI


def uvicorn_config(app: FastAPI, host: str, port: int, access_log: bool = False) -> uvicorn.Config:
    """The server settings the proxy is measured with: uvloop, httptools, no access log."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
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
