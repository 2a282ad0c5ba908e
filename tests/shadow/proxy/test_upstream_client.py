"""The hot path's lean upstream client, against real sockets: framing, reuse, failures, TLS."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from shadow.proxy.upstream import UpstreamConnectionError, UpstreamPool, UpstreamProtocolError

JSON = b'{"ok":true}'
OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n" + JSON

# What the scripted upstream does with one whole request: write these bytes (None: nothing),
# then close the connection or keep it.
Script = Callable[[bytes, int], Awaitable[tuple[bytes | None, bool]]]


class ScriptedUpstream:
    """A raw TCP server that answers each request with bytes a test chooses."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[bytes] = []
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        for writer in self.writers:
            writer.close()
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                answer, close = await self.script(request, self.connections)
                if answer is not None:
                    writer.write(answer)
                    await writer.drain()
                if close:
                    writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


def run(script: Script, scenario: Callable[[ScriptedUpstream], Awaitable[None]]) -> None:
    async def main() -> None:
        upstream = ScriptedUpstream(script)
        await upstream.start()
        try:
            await scenario(upstream)
        finally:
            await upstream.stop()

    asyncio.run(main())


async def answer_ok(request: bytes, connection: int) -> tuple[bytes | None, bool]:
    return OK, False


def url(upstream: ScriptedUpstream, path: str = "/v1/chat/completions") -> str:
    return f"http://127.0.0.1:{upstream.port}{path}"


async def wait_until(condition: Callable[[], bool], deadline_s: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    until = loop.time() + deadline_s
    while not condition():
        assert loop.time() < until, "the condition did not come true in time"
        await asyncio.sleep(0.01)


def test_a_request_is_written_whole_and_its_answer_read():
    async def scenario(upstream: ScriptedUpstream) -> None:
        pool = UpstreamPool(f"http://127.0.0.1:{upstream.port}/v1")
        answer = await pool.post(url(upstream), b'{"model":"m"}', {"authorization": "Bearer k"})
        assert answer.status == 200
        assert await answer.read() == JSON
        assert answer.content_type == "application/json"
        head, _, body = upstream.requests[0].partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        assert lines[0] == b"POST /v1/chat/completions HTTP/1.1"
        assert f"host: 127.0.0.1:{upstream.port}".encode() in lines
        assert b"authorization: Bearer k" in lines
        assert b"content-length: 13" in lines
        # a body that says nothing of its type is the JSON the proxy parsed
        assert b"content-type: application/json" in lines
        assert body == b'{"model":"m"}'
        await pool.close()

    run(answer_ok, scenario)


def test_one_connection_carries_requests_one_after_another():
    async def scenario(upstream: ScriptedUpstream) -> None:
        pool = UpstreamPool(f"http://127.0.0.1:{upstream.port}")
        for _ in range(5):
            assert (await pool.post(url(upstream), b"{}", {})).status == 200
        assert upstream.connections == 1
        await pool.close()

    run(answer_ok, scenario)


def test_concurrent_requests_each_get_their_own_answer():
    async def echo(request: bytes, connection: int) -> tuple[bytes | None, bool]:
        body = request.partition(b"\r\n\r\n")[2]
        await asyncio.sleep(0.01)
        head = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body)
        return head + body, False

    async def scenario(upstream: ScriptedUpstream) -> None:
        pool = UpstreamPool(f"http://127.0.0.1:{upstream.port}")
        bodies = [b'{"n":%d}' % n for n in range(20)]
        answers = await asyncio.gather(*(pool.post(url(upstream), b, {}) for b in bodies))
        assert [await a.read() for a in answers] == bodies
        await pool.close()

    run(echo, scenario)


def test_a_large_body_goes_out_whole():
    async def length(request: bytes, connection: int) -> tuple[bytes | None, bool]:
        size = str(len(request.partition(b"\r\n\r\n")[2])).encode()
        return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(size), size), False

    async def scenario(upstream: ScriptedUpstream) -> None:
        pool = UpstreamPool(f"http://127.0.0.1:{upstream.port}")
        body = b'{"x":"' + b"a" * 3_000_000 + b'"}'
        assert await (await pool.post(url(upstream), body, {})).read() == str(len(body)).encode()
        await pool.close()

    run(length, scenario)


def test_chunked_and_close_delimited_answers_are_read_to_their_end():
    async def framed(request: bytes, connection: int) -> tuple[bytes | None, bool]:
        if connection == 1:
            chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
            return chunked + b'4\r\n{"a"\r\n3\r\n:1}\r\n0\r\n\r\n', False
        # no length of its own: the body ends with the connection (RFC 9112, 6.3)
        return b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + JSON, True

    async def scenario(upstream: ScriptedUpstream) -> None:
        pool = UpstreamPool(f"http://127.0.0.1:{upstream.port}")
        assert await (await pool.post(url(upstream), b"{}", {})).read() == b'{"a":1}'
        # a fresh connection for the second request: close it to force the second script
        await pool.close()
        assert await (await pool.post(url(upstream), b"{}", {})).read() == JSON
        assert pool.idle == 0  # that connection ended with its answer
        await pool.close()

    run(framed, scenario)


def test_an_interim_100_answer_is_followed_by_the_final_one():
    async def interim(request: bytes, connection: int) -> tuple[bytes | None, bool]:
        return b"HTTP/1.1 100 Continue\r\n\r\n" + OK, False

    async def scenario(upstream: ScriptedUpstream) -> None:
        pool = UpstreamPool(f"http://127.0.0.1:{upstream.port}")
        answer = await pool.post(url(upstream), b"{}", {})
        assert (answer.status, await answer.read()) == (200, JSON)
        assert (await pool.post(url(upstream), b"{}", {})).status == 200
        assert upstream.connections == 1
        await pool.close()

    run(interim, scenario)


def test_several_set_cookie_headers_are_all_kept():
    async def cookies(request: bytes, connection: int) -> tuple[bytes | None, bool]:
        head = b"HTTP/1.1 200 OK\r\nset-cookie: a=1\r\nSet-Cookie: b=2\r\ncontent-length: 0\r\n\r\n"
        return head, False

    async def scenario(upstream: ScriptedUpstream) -> None:
        pool = UpstreamPool(f"http://127.0.0.1:{upstream.port}")
        answer = await pool.post(url(upstream), b"{}", {})
        assert answer.headers.getall("set-cookie") == ["a=1", "b=2"]
        await pool.close()

    run(cookies, scenario)


def test_an_idle_connection_the_upstream_closed_is_not_reused():
    async def once(request: bytes, connection: int) -> tuple[bytes | None, bool]:
        return OK, True  # keep-alive by its headers, yet closed right after

    async def scenario(upstream: ScriptedUpstream) -> None:
        pool = UpstreamPool(f"http://127.0.0.1:{upstream.port}")
        assert (await pool.post(url(upstream), b"{}", {})).status == 200
        await wait_until(lambda: pool.idle == 0)  # its close arrived: it left the pool
        assert (await pool.post(url(upstream), b"{}", {})).status == 200
        assert upstream.connections == 2
        await pool.close()

    run(once, scenario)


def test_a_connection_idle_past_the_keepalive_is_not_reused():
    async def scenario(upstream: ScriptedUpstream) -> None:
        pool = UpstreamPool(f"http://127.0.0.1:{upstream.port}", keepalive_s=0.0)
        assert (await pool.post(url(upstream), b"{}", {})).status == 200
        assert (await pool.post(url(upstream), b"{}", {})).status == 200
        assert upstream.connections == 2
        await pool.close()

    run(answer_ok, scenario)


def test_an_answer_cut_off_is_a_connection_error_and_never_resent():
    async def cut(request: bytes, connection: int) -> tuple[bytes | None, bool]:
        return b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"partial', True

    async def scenario(upstream: ScriptedUpstream) -> None:
        pool = UpstreamPool(f"http://127.0.0.1:{upstream.port}")
        with pytest.raises(UpstreamConnectionError) as raised:
            await pool.post(url(upstream), b"{}", {})
        # the proxy maps aiohttp's connection errors to its 502
        assert isinstance(raised.value, aiohttp.ClientConnectionError)
        assert len(upstream.requests) == 1  # a POST is not retried
        await pool.close()

    run(cut, scenario)


def test_an_answer_that_is_not_http_is_a_protocol_error():
    async def garbage(request: bytes, connection: int) -> tuple[bytes | None, bool]:
        return b"SSH-2.0-OpenSSH_9.2\r\n\r\n", False

    async def scenario(upstream: ScriptedUpstream) -> None:
        pool = UpstreamPool(f"http://127.0.0.1:{upstream.port}")
        with pytest.raises(UpstreamProtocolError) as raised:
            await pool.post(url(upstream), b"{}", {})
        assert isinstance(raised.value, aiohttp.ClientError)
        assert pool.idle == 0
        await pool.close()

    run(garbage, scenario)


def test_an_upstream_that_never_answers_times_out():
    async def silent(request: bytes, connection: int) -> tuple[bytes | None, bool]:
        return None, False

    async def scenario(upstream: ScriptedUpstream) -> None:
        pool = UpstreamPool(f"http://127.0.0.1:{upstream.port}", read_timeout_s=0.2)
        with pytest.raises(TimeoutError):
            await pool.post(url(upstream), b"{}", {})
        assert pool.idle == 0  # the connection is not reused: its answer may still come
        await pool.close()

    run(silent, scenario)


def test_nothing_listening_is_a_connection_error():
    async def scenario(upstream: ScriptedUpstream) -> None:
        await upstream.stop()
        pool = UpstreamPool(f"http://127.0.0.1:{upstream.port}")
        with pytest.raises(UpstreamConnectionError):
            await pool.post(url(upstream), b"{}", {})

    run(answer_ok, scenario)


def test_a_header_with_a_line_break_is_refused_before_anything_is_sent():
    async def scenario(upstream: ScriptedUpstream) -> None:
        pool = UpstreamPool(f"http://127.0.0.1:{upstream.port}")
        with pytest.raises(ValueError, match="line break"):
            await pool.post(url(upstream), b"{}", {"x-team": "a\r\nx-injected: 1"})
        with pytest.raises(ValueError, match="origin"):
            await pool.post("http://elsewhere.example/v1/chat/completions", b"{}", {})
        assert upstream.requests == []
        await pool.close()

    run(answer_ok, scenario)


def test_an_https_upstream_is_reached_over_tls_with_its_name_checked(tmp_path: Path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)

    async def main() -> None:
        upstream = ScriptedUpstream(answer_ok)
        await upstream.start(server_context)
        trusting = ssl.create_default_context(cafile=str(cert))
        pool = UpstreamPool(f"https://localhost:{upstream.port}/v1", ssl_context=trusting)
        answer = await pool.post(
            f"https://localhost:{upstream.port}/v1/chat/completions", b"{}", {}
        )
        assert await answer.read() == JSON
        await pool.close()
        # the system's CAs do not vouch for this certificate
        untrusting = UpstreamPool(f"https://localhost:{upstream.port}/v1")
        with pytest.raises(UpstreamConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusting.post(f"https://localhost:{upstream.port}/v1/x", b"{}", {})
        await upstream.stop()

    asyncio.run(main())
