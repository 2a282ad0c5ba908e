"""A lean keep-alive HTTP/1.1 client for the hot path's non-streamed calls to a primary.

aiohttp's `ClientSession.request` does a great deal a proxy's one POST to a known origin does
not need: URL parsing and joining, cookie jars, trace hooks, timers per phase, a response
object with its own stream reader. On this project's 2-core bench machine that was most of
the time the proxy added to a request (bench/proxy_overhead.py). This client keeps only the
message itself: the request is written as one buffer on a pooled connection, and the answer
is framed by httptools' llhttp parser (the parser uvicorn uses for the server side), which
handles `content-length`, chunked and close-delimited bodies (RFC 9112, section 6.3).

What it deliberately does not do, and where that is handled instead:
- streamed answers: a request with `"stream": true` goes through the aiohttp session, whose
  stream reader `RelayResponse` relays chunk by chunk;
- content codings: the proxy asks for `accept-encoding: identity` (`HeaderPolicy`) and
  relays the bytes as they come, as it does with aiohttp's `auto_decompress=False`;
- retries: a POST is not idempotent (RFC 9110, section 9.2.2), so a connection that breaks
  is reported, never silently re-sent; an idle connection the upstream closed leaves the pool
  when its close arrives, and one found closing is not reused.

Errors are aiohttp's exception classes, so the proxy maps them to 502 and 504 the same way for
both clients; timeouts are `TimeoutError`.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from typing import cast
from urllib.parse import urlsplit

import aiohttp
import httptools
from multidict import CIMultiDict, CIMultiDictProxy

# A request body up to this size is joined to its head and written at once.
_JOIN_AT_MOST = 64 * 1024


class UpstreamConnectionError(aiohttp.ClientConnectionError):
    """The upstream could not be reached, or the connection broke before the answer ended."""


class UpstreamProtocolError(aiohttp.ClientResponseError):
    """The upstream's answer is not valid HTTP/1.1."""

    def __init__(self, message: str) -> None:
        super().__init__(None, (), message=message)  # type: ignore[arg-type]


class Answer:
    """A complete upstream answer, with the few attributes of aiohttp's response the proxy reads."""

    __slots__ = ("_body", "headers", "status")

    def __init__(self, status: int, headers: CIMultiDictProxy[str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self._body = body

    @property
    def content_type(self) -> str:
        """The media type of `content-type`, lower case, without parameters."""
        value = self.headers.get("content-type", "application/octet-stream")
        return value.partition(";")[0].strip().lower()

    async def read(self) -> bytes:
        """The body (already read whole)."""
        return self._body

    def release(self) -> None:
        """Nothing to release: the connection went back to its pool when the answer ended."""

    def close(self) -> None:
        """As `release`."""


class _Connection(asyncio.Protocol):
    """One connection to the upstream, carrying one request at a time."""

    def __init__(self, pool: UpstreamPool) -> None:
        self._pool = pool
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[Answer] | None = None
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._headers_done = False
        self._timer: asyncio.TimerHandle | None = None
        self.idle_since = 0.0
        self.closed = False

    # ------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self._answer is None:
            # bytes nobody asked for: the connection's framing can no longer be trusted
            self._close()
            return
        self._arm()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamProtocolError("the upstream switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(UpstreamProtocolError(f"the upstream's answer is not valid HTTP: {exc}"))

    def eof_received(self) -> bool | None:
        if self._answer is not None and self._headers_done and self._close_delimited():
            self._complete(reusable=False)  # such a body ends where the connection does
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._disarm()
        self._pool.forget(self)
        if self._answer is not None and not self._answer.done():
            why = f": {exc}" if exc is not None else ""
            self._answer.set_exception(
                UpstreamConnectionError(f"the upstream closed the connection{why}")
            )
        self._answer = None

    # ------------------------------------------------------------ httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self._parser.get_status_code() < 200:
            # an interim answer (RFC 9110, section 15.2): the final one follows
            self._headers, self._body, self._headers_done = [], [], False
            return
        self._complete(self._parser.should_keep_alive())

    def _complete(self, reusable: bool) -> None:
        answer = self._answer
        if answer is None:  # an answer nobody asked for: the framing is lost
            self._close()
            return
        self._answer = None
        self._disarm()
        status = self._parser.get_status_code()
        result = Answer(status, CIMultiDictProxy(CIMultiDict(self._headers)), b"".join(self._body))
        self._headers, self._body, self._headers_done = [], [], False
        if not answer.done():
            answer.set_result(result)
        if reusable and not self.closed:
            self._pool.give_back(self)
        else:
            self._close()

    # ------------------------------------------------------------ requests

    def send(self, request: bytes, body: bytes, answer: asyncio.Future[Answer]) -> None:
        """Write one request; `answer` gets its complete answer, or the error that ended it."""
        assert self._transport is not None
        self._answer = answer
        self._arm()
        if len(body) <= _JOIN_AT_MOST:
            self._transport.write(request + body)
        else:
            self._transport.write(request)
            self._transport.write(body)

    def _close_delimited(self) -> bool:
        """Whether the answer's body has no length of its own (RFC 9112, section 6.3, item 8)."""
        names = {name.lower(): value for name, value in self._headers}
        return (
            "content-length" not in names
            and "chunked" not in names.get("transfer-encoding", "").lower()
        )

    @property
    def usable(self) -> bool:
        """Whether an idle connection can carry another request."""
        return (
            not self.closed
            and self._transport is not None
            and not self._transport.is_closing()
            and time.monotonic() - self.idle_since < self._pool.keepalive_s
        )

    def _arm(self) -> None:
        """(Re)start the read timeout: the longest wait for the next bytes of the answer."""
        if self._timer is not None:
            self._timer.cancel()
        loop = self._pool.loop
        self._timer = loop.call_at(loop.time() + self._pool.read_timeout_s, self._timed_out)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        self._fail(TimeoutError(f"no answer within {self._pool.read_timeout_s:g} s"))

    def _fail(self, exc: Exception) -> None:
        answer = self._answer
        self._answer = None
        if answer is not None and not answer.done():
            answer.set_exception(exc)
        self._close()

    def _close(self) -> None:
        self._disarm()
        self.closed = True
        self._pool.forget(self)
        if self._transport is not None:
            self._transport.close()


class UpstreamPool:
    """Keep-alive connections to one upstream's origin (`scheme://host:port`).

    Idle connections are reused last-in first-out (the most recently used is the least likely
    to have been closed by the upstream); there is no cap on connections, as with the aiohttp
    sessions' `limit=0`. `ssl_context` is the default context (system CAs, the host name
    checked) for an `https` upstream unless another is given.
    """

    def __init__(
        self,
        base_url: str,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 600.0,
        keepalive_s: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._host = parts.hostname
        default_port = 443 if parts.scheme == "https" else 80
        self._port = parts.port or default_port
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = host if self._port == default_port else f"{host}:{self._port}"
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._ssl = ssl_context or ssl.create_default_context()
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.keepalive_s = keepalive_s
        self._idle: deque[_Connection] = deque()
        self._open: set[_Connection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the pool's connections run on (the first caller's)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    @property
    def idle(self) -> int:
        """How many connections wait for a request."""
        return len(self._idle)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        """POST `body` to `url` (on this pool's origin) and return the whole answer."""
        target = self._target(url)
        head = self._head(target, body, headers)
        connection = self._take_idle() or await self._connect()
        answer: asyncio.Future[Answer] = self.loop.create_future()
        connection.send(head, body, answer)
        return await answer

    def give_back(self, connection: _Connection) -> None:
        """A connection whose answer ended and that may carry another request."""
        connection.idle_since = time.monotonic()
        self._idle.append(connection)

    def forget(self, connection: _Connection) -> None:
        """A connection that closed or will close."""
        self._open.discard(connection)
        try:
            self._idle.remove(connection)
        except ValueError:
            pass

    async def close(self) -> None:
        """Close every connection."""
        for connection in list(self._open):
            connection._close()
        self._idle.clear()

    def _target(self, url: str) -> str:
        if not url.startswith(self._origin):
            raise ValueError(f"{url!r} is not on the pool's origin {self._origin!r}")
        target = url[len(self._origin) :] or "/"
        if not target.startswith("/"):
            raise ValueError(f"{url!r} is not on the pool's origin {self._origin!r}")
        return target

    def _head(self, target: str, body: bytes, headers: dict[str, str]) -> bytes:
        lines = [f"POST {target} HTTP/1.1", f"host: {self._host_header}"]
        has_type = has_accept = False
        for name, value in headers.items():
            lowered = name.lower()
            if lowered in ("host", "content-length", "transfer-encoding", "connection"):
                continue  # this client frames the message itself
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
                raise ValueError(f"header {name!r} holds a line break or a colon")
            has_type = has_type or lowered == "content-type"
            has_accept = has_accept or lowered == "accept"
            lines.append(f"{name}: {value}")
        if not has_type:
            lines.append("content-type: application/json")
        if not has_accept:
            lines.append("accept: */*")
        lines.append(f"content-length: {len(body)}")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("latin-1")

    def _take_idle(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if connection.usable:
                return connection
            connection._close()
        return None

    async def _connect(self) -> _Connection:
        loop = self.loop
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, connection = await loop.create_connection(
                    lambda: _Connection(self),
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl is not None else None,
                )
        except TimeoutError:
            raise TimeoutError(f"no connection within {self.connect_timeout_s:g} s") from None
        except OSError as exc:
            raise UpstreamConnectionError(f"cannot connect to the upstream: {exc}") from exc
        self._open.add(connection)
        return connection
