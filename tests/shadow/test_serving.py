"""The server the proxy runs under: a response's head and body leave in one write."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

import httpx
import pytest
from fastapi import FastAPI, Response
from fastapi.responses import StreamingResponse

from shadow import serving
from shadow.serving import OneWriteHttpToolsProtocol, serve_in_thread, uvicorn_config

LARGE = 200_000


class Recording:
    """A connection's real transport, with each write kept on its way to it."""

    def __init__(self, transport: asyncio.Transport, writes: list[bytes]) -> None:
        self._transport = transport
        self._writes = writes

    def write(self, data: Any) -> None:
        self._writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CountingProtocol(OneWriteHttpToolsProtocol):
    """Keeps every write that reaches the connection's transport."""

    writes: ClassVar[list[bytes]] = []

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(Recording(transport, self.writes))  # type: ignore[arg-type]


def _app(release: threading.Event) -> FastAPI:
    app = FastAPI()

    @app.post("/answer")
    async def answer() -> Response:
        return Response(b'{"ok": true}', media_type="application/json")

    @app.get("/large")
    async def large() -> Response:
        return Response(b"x" * LARGE, media_type="text/plain")

    @app.get("/empty")
    async def empty() -> Response:
        return Response(status_code=204)

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            # the first chunk waits until the client has seen the head
            while not release.is_set():
                await asyncio.sleep(0.01)
            yield b"data: one\n\n"
            yield b"data: [DONE]\n\n"

        return StreamingResponse(chunks(), media_type="text/event-stream")

    return app


@pytest.fixture
def served(monkeypatch) -> Iterator[tuple[str, threading.Event]]:
    release = threading.Event()
    # the server `serve_in_thread` starts, with the writes counted
    monkeypatch.setattr(serving, "OneWriteHttpToolsProtocol", CountingProtocol)
    with serve_in_thread(_app(release)) as url:
        CountingProtocol.writes.clear()
        try:
            yield url, release
        finally:
            release.set()


def test_the_proxy_server_uses_the_one_write_protocol():
    assert uvicorn_config(FastAPI(), "127.0.0.1", 1).http is OneWriteHttpToolsProtocol


def test_a_response_head_and_body_go_out_in_one_write(served):
    url, _ = served
    with httpx.Client() as client:
        for _ in range(3):  # one keep-alive connection, three responses
            response = client.post(f"{url}/answer")
            assert response.json() == {"ok": True}
    assert len(CountingProtocol.writes) == 3
    for write in CountingProtocol.writes:
        assert write.startswith(b"HTTP/1.1 200 OK\r\n")
        assert write.endswith(b'\r\n\r\n{"ok": true}')


def test_a_response_without_a_body_is_sent(served):
    url, _ = served
    response = httpx.get(f"{url}/empty")
    assert response.status_code == 204
    assert len(CountingProtocol.writes) == 1


def test_a_large_body_follows_its_head_uncopied(served):
    url, _ = served
    response = httpx.get(f"{url}/large")
    assert response.content == b"x" * LARGE
    head, body = CountingProtocol.writes
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert head.endswith(b"\r\n\r\n")
    assert len(body) == LARGE


def test_a_streams_head_is_sent_before_its_first_chunk_exists(served):
    url, release = served
    with httpx.Client(timeout=30) as client, client.stream("GET", f"{url}/stream") as response:
        # the head arrived while the stream's first chunk is still held back
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        release.set()
        assert b"".join(response.iter_bytes()) == b"data: one\n\ndata: [DONE]\n\n"


def test_a_raw_request_gets_its_whole_answer(served):
    url, _ = served
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /answer HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
        data = b""
        while not data.endswith(b'{"ok": true}'):
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
