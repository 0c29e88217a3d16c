"""The data path's fast lane: plain keep-alive HTTP/1.1 proxying below aiohttp.

Profiling showed aiohttp's client and server machinery costing far more than
the proxy's own decisions, so ordinary requests take a shorter road. Every
connection starts here (``FrontProtocol``). A request head that is plain
HTTP/1.1 -- a clean parse, a Host, no ``Transfer-Encoding``, ``Upgrade`` or
``Expect``, a body of at most ``FAST_BODY_MAX`` bytes, a path without ``%``,
dot segments or anything that could route to the token API or the health
prefix -- is admitted by the same ``Gate``, rewritten by the same
``headers.for_upstream``, and relayed over a pool of raw upstream
connections. Anything else hands the connection, with the bytes already
read, to aiohttp for good (``RequestHandler``), which serves the token API,
WebSockets, large uploads, ``100-continue`` and every malformed request
exactly as before. The decisions are shared; only the I/O is leaner.

Responses stream with backpressure (a paused client pauses the upstream
read); ``Content-Length`` and chunked bodies keep their framing byte for byte,
a body delimited by the upstream closing is passed on and the client
connection closed after it. An upstream connection is reused only after a
complete response that did not ask to close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from multidict import CIMultiDict

from .api import BASE_PATH
from .app import HEALTH_PREFIX
from .config import Config
from .errors import ProxyError, UpstreamTimeout, UpstreamUnavailable, error_body
from .forwarding import TRUSTED_PROXIES, Network, client_view
from .gate import Gate
from .headers import Headers, Injection, for_client, normalise

log = logging.getLogger(__name__)
access_log = logging.getLogger("apitokenproxy.access")

FAST_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
FAST_BODY_MAX = 64 * 1024
MAX_HEAD = 16 * 1024
MAX_LINE = 8190  # aiohttp's limit for a request or header line
MAX_HEADERS = 100
HIGH_WATER = 256 * 1024
CHUNK = 64 * 1024

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Paths aiohttp routes to the proxy's own handlers, matched loosely (any case).
_ROUTED_ELSEWHERE = (BASE_PATH.split("/")[2].lower(), HEALTH_PREFIX.strip("/").lower())


class _Timeout(Exception):
    pass


class _Closed(Exception):
    pass


class _ClientGone(Exception):
    pass


@dataclass(frozen=True)
class RequestHead:
    method: str
    target: str
    headers: Headers
    content_length: int
    close: bool
    host: str


def parse_request_head(head: bytes) -> RequestHead | None:
    """The request head, if it is one for the fast lane; None hands it to aiohttp."""
    lines = head.decode("latin-1").split("\r\n")
    if any(len(line) > MAX_LINE for line in lines):
        return None  # aiohttp refuses these with its own limits
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    method, target, version = parts
    if version != "HTTP/1.1" or method not in FAST_METHODS or not target.startswith("/"):
        return None
    path = target.partition("?")[0]
    lowered = path.lower()
    if "%" in path or "//" in path or "/." in path or any(r in lowered for r in _ROUTED_ELSEWHERE):
        return None
    if len(lines) - 1 > MAX_HEADERS:
        return None
    headers: Headers = []
    length: int | None = None
    close = False
    host: str | None = None
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
            return None
        value = value.strip(" \t")
        key = name.lower()
        if key in ("transfer-encoding", "upgrade", "expect"):
            return None
        if key == "content-length":
            if length is not None or not value.isdigit() or not value.isascii():
                return None
            length = int(value)
        elif key == "connection":
            close = close or "close" in {t.strip().lower() for t in value.split(",")}
        elif key == "host":
            if host is not None:
                return None
            host = value
        headers.append((name, value))
    if host is None or (length or 0) > FAST_BODY_MAX:
        return None
    return RequestHead(method, target, headers, length or 0, close, host)


class _Stream(asyncio.Protocol):
    """A protocol with a read buffer, awaitable reads and write flow control."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self._waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._read_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
            self._read_paused = True
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self._wake()
        self._write_paused = False
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def more(self, seconds: float) -> None:
        """Wait for more bytes (or EOF); raise _Timeout after ``seconds``."""
        if self.eof:
            raise _Closed
        waiter = self._loop.create_future()
        self._waiter = waiter
        timer = self._loop.call_later(seconds, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def take(self, n: int) -> bytes:
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        if self._read_paused and len(self.buffer) < HIGH_WATER // 4 and self.transport:
            self._read_paused = False
            self.transport.resume_reading()
        return data

    async def drain(self) -> None:
        if self._write_paused and not self.eof:
            waiter = self._loop.create_future()
            self._drain_waiter = waiter
            await waiter

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(_Timeout())


class _Upstream(_Stream):
    reused = False


class UpstreamPool:
    """Idle keep-alive connections to the upstream, at most ``limit`` open at once."""

    def __init__(self, host: str, port: int, limit: int, connect_timeout: float) -> None:
        self._host, self._port = host, port
        self._idle: deque[_Upstream] = deque()
        self._slots = asyncio.Semaphore(limit)
        self._connect_timeout = connect_timeout

    async def acquire(self, fresh: bool = False) -> _Upstream:
        await self._slots.acquire()
        try:
            while self._idle and not fresh:
                conn = self._idle.pop()
                if not conn.eof and conn.transport is not None and not conn.transport.is_closing():
                    conn.reused = True
                    return conn
                conn.close()
            loop = asyncio.get_running_loop()
            try:
                _, conn = await asyncio.wait_for(
                    loop.create_connection(_Upstream, self._host, self._port),
                    self._connect_timeout,
                )
            except TimeoutError as exc:
                raise UpstreamTimeout("the upstream did not accept a connection in time") from exc
            except OSError as exc:
                raise UpstreamUnavailable(
                    "the upstream refused the connection or cannot be reached"
                ) from exc
            return conn
        except BaseException:
            self._slots.release()
            raise

    def release(self, conn: _Upstream, reusable: bool) -> None:
        if reusable and not conn.eof and not conn.buffer:
            self._idle.append(conn)
        else:
            conn.close()
        self._slots.release()

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


@dataclass(frozen=True)
class _Response:
    status: int
    head: bytes  # the head to send to the client
    framing: str  # "none", "length", "chunked" or "close"
    length: int
    reusable: bool


class FastPath:
    """Shared state of the fast lane for one worker process."""

    def __init__(
        self,
        app: web.Application,
        config: Config,
        gate: Gate,
        *,
        header_timeout: float,
        keepalive_timeout: float,
    ) -> None:
        parts = urlsplit(config.upstream.url)
        upstream = config.upstream
        self.enabled = parts.scheme == "http"
        self.gate = gate
        self.trusted: tuple[Network, ...] = app[TRUSTED_PROXIES]
        self.pool = UpstreamPool(
            parts.hostname or "localhost",
            parts.port or 80,
            upstream.max_connections,
            upstream.connect_timeout_seconds,
        )
        self.read_timeout = upstream.read_timeout_seconds
        self.header_timeout = header_timeout
        self.keepalive_timeout = keepalive_timeout
        self.injection = Injection.from_config(upstream)
        self.access_log = config.logging.access_log
        self.connections: set[FrontProtocol] = set()
        self.closing = False
        # Requests answered here, and connections handed to aiohttp.
        self.served = 0
        self.handed_off = 0

    async def shutdown(self, grace: float) -> None:
        """Stop taking requests, let those in flight finish, then close what is left."""
        self.closing = True
        busy = []
        for conn in list(self.connections):
            if conn.busy and conn.task is not None:
                busy.append(conn.task)
            else:
                conn.close()
        if busy:
            await asyncio.wait(busy, timeout=grace)
        for conn in list(self.connections):
            conn.abort()
        self.pool.close()


class FrontProtocol(_Stream):
    """One client connection: served here while its requests are plain, else by aiohttp."""

    def __init__(self, fast: FastPath, fallback: Callable[[], asyncio.Protocol]) -> None:
        super().__init__()
        self._fast = fast
        self._fallback = fallback
        self.task: asyncio.Task[None] | None = None
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._fast.connections.add(self)
        self.task = self._loop.create_task(self._serve())

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._fast.connections.discard(self)

    def _hand_off(self) -> None:
        """Give this connection, and what was read of it, to aiohttp for good."""
        transport = self.transport
        assert transport is not None
        self._fast.connections.discard(self)
        self._fast.handed_off += 1
        handler = self._fallback()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if self.buffer:
            handler.data_received(bytes(self.buffer))
            self.buffer.clear()
        if self._read_paused:
            transport.resume_reading()
        if self.eof:
            handler.eof_received()

    async def _serve(self) -> None:
        served = 0
        try:
            while not self._fast.closing:
                wait = self._fast.keepalive_timeout if served else self._fast.header_timeout
                end = await self._head_end(wait)
                if end < 0:
                    self._hand_off()
                    return
                head = parse_request_head(bytes(self.buffer[:end]))
                if head is None:
                    self._hand_off()
                    return
                self.busy = True
                while len(self.buffer) < end + 4 + head.content_length:
                    await self.more(self._fast.read_timeout)
                self.take(end + 4)
                body = self.take(head.content_length)
                keep = await self._exchange(head, body)
                self.busy = False
                served += 1
                self._fast.served += 1
                if not keep or head.close:
                    break
        except (_Timeout, _Closed, _ClientGone):
            pass
        except Exception:
            log.exception("fast path failed; connection closed")
        finally:
            self.busy = False
        if self.transport is not None and self.transport.get_protocol() is self:
            self.close()

    async def _head_end(self, wait: float) -> int:
        """Index of the blank line ending the next head; -1 to hand off (too long)."""
        start = 0
        while True:
            end = self.buffer.find(b"\r\n\r\n", start)
            if end >= 0:
                return end
            if len(self.buffer) > MAX_HEAD:
                return -1
            start = max(0, len(self.buffer) - 3)
            if self.eof:
                raise _Closed
            if self.buffer:
                # The client is mid-head: the deadline still stands, but an
                # incomplete head is aiohttp's to refuse when it comes.
                wait = min(wait, self._fast.header_timeout)
            await self.more(wait)

    async def _exchange(self, head: RequestHead, body: bytes) -> bool:
        """Serve one request; True if the client connection may carry another."""
        peer = self.transport.get_extra_info("peername") if self.transport else None
        headers = CIMultiDict(head.headers)
        view = client_view(
            peer[0] if peer else None,
            headers,
            headers.getall("X-Forwarded-For", []),
            scheme="http",
            host=head.host,
            trusted=self._fast.trusted,
        )
        try:
            admission = await self._fast.gate.admit(
                headers.getall("Authorization", []), view.address
            )
        except ProxyError as exc:
            if exc.status >= 500:
                log.warning("%s %s -> %d: %s", head.method, head.target, exc.status, exc.message)
            return self._error(head, exc.status, exc.code, exc.message, exc.headers)
        except Exception:
            log.exception("unexpected error on %s %s", head.method, head.target)
            return self._error(
                head, 500, "internal_error", "internal error; see the proxy's log", {}
            )
        outgoing = self._fast.injection.rewrite(
            head.headers,
            view,
            user_name=admission.user_name,
            strip_authorization=admission.strip_authorization,
        )
        request = (
            f"{head.method} {head.target} HTTP/1.1\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in outgoing)
            + "\r\n"
        ).encode("latin-1") + body
        try:
            upstream, response = await self._send(head, request)
        except ProxyError as exc:
            log.warning("%s %s -> %d: %s", head.method, head.target, exc.status, exc.message)
            return self._error(head, exc.status, exc.code, exc.message, exc.headers)
        keep = response.framing != "close" and not head.close
        self.write(response.head)
        complete = False
        try:
            complete = await self._relay(upstream, response)
        finally:
            self._fast.pool.release(upstream, complete and response.reusable)
        self._log(head, response.status)
        if not complete:
            self.abort()
            return False
        return keep

    async def _send(self, head: RequestHead, request: bytes) -> tuple[_Upstream, _Response]:
        """Send the request; a reused connection that died idle is retried once if safe."""
        for attempt in (1, 2):
            upstream = await self._fast.pool.acquire(fresh=attempt == 2)
            upstream.write(request)
            try:
                return upstream, await self._response_head(upstream, head)
            except _Closed as exc:
                self._fast.pool.release(upstream, False)
                if upstream.reused and attempt == 1 and head.method in IDEMPOTENT:
                    continue
                raise UpstreamUnavailable(
                    "the upstream closed the connection without answering"
                ) from exc
            except _Timeout as exc:
                self._fast.pool.release(upstream, False)
                raise UpstreamTimeout("the upstream did not answer in time") from exc
            except UpstreamUnavailable:
                self._fast.pool.release(upstream, False)
                raise
        raise AssertionError("unreachable")

    async def _response_head(self, upstream: _Upstream, head: RequestHead) -> _Response:
        while True:
            end = upstream.buffer.find(b"\r\n\r\n")
            while end < 0:
                if len(upstream.buffer) > MAX_HEAD:
                    raise UpstreamUnavailable("the upstream sent an oversized response head")
                await upstream.more(self._fast.read_timeout)
                end = upstream.buffer.find(b"\r\n\r\n")
            raw = upstream.take(end + 4)[:-4].decode("latin-1")
            lines = raw.split("\r\n")
            status_line = lines[0].split(" ", 2)
            if (
                len(status_line) < 2
                or not status_line[0].startswith("HTTP/1.")
                or not (status_line[1].isdigit() and len(status_line[1]) == 3)
            ):
                raise UpstreamUnavailable("the upstream answered with invalid HTTP")
            status = int(status_line[1])
            if 100 <= status < 200:
                if status == 101:
                    raise UpstreamUnavailable("the upstream switched protocols unasked")
                continue  # informational: the final answer follows
            reason = status_line[2] if len(status_line) > 2 else ""
            headers: Headers = []
            for line in lines[1:]:
                name, colon, value = line.partition(":")
                if not colon or not _TOKEN.fullmatch(name):
                    raise UpstreamUnavailable("the upstream answered with invalid HTTP")
                headers.append((name, value.strip(" \t")))
            return _response(head, status, reason, status_line[0], headers)

    async def _relay(self, upstream: _Upstream, response: _Response) -> bool:
        """Pass the body on; True once it is complete."""
        try:
            if response.framing == "none":
                return True
            if response.framing == "length":
                await self._copy(upstream, response.length)
                return True
            if response.framing == "chunked":
                await self._relay_chunked(upstream)
                return True
            while True:  # delimited by the upstream closing
                if upstream.buffer:
                    await self._forward(upstream.take(CHUNK))
                elif upstream.eof:
                    return True
                else:
                    with contextlib.suppress(_Closed):
                        await upstream.more(self._fast.read_timeout)
        except (_Timeout, _Closed) as exc:
            log.warning("upstream failed mid-response (%s); connection closed", type(exc).__name__)
            return False
        except _ClientGone:
            return False

    async def _relay_chunked(self, upstream: _Upstream) -> None:
        while True:
            line_end = await _find(upstream, b"\r\n", self._fast.read_timeout)
            size_text = bytes(upstream.buffer[:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError as exc:
                raise _Closed from exc
            await self._forward(upstream.take(line_end + 2))
            if size == 0:
                # Trailers (perhaps none), then the final blank line.
                while True:
                    line_end = await _find(upstream, b"\r\n", self._fast.read_timeout)
                    await self._forward(upstream.take(line_end + 2))
                    if line_end == 0:
                        return
            await self._copy(upstream, size + 2)  # the data and its CRLF

    async def _copy(self, upstream: _Upstream, remaining: int) -> None:
        """Pass exactly ``remaining`` bytes from the upstream to the client."""
        while remaining:
            if not upstream.buffer:
                await upstream.more(self._fast.read_timeout)
            chunk = upstream.take(min(remaining, len(upstream.buffer), CHUNK))
            remaining -= len(chunk)
            await self._forward(chunk)

    async def _forward(self, data: bytes) -> None:
        if self.eof and (self.transport is None or self.transport.is_closing()):
            raise _ClientGone
        self.write(data)
        await self.drain()

    def _error(
        self, head: RequestHead, status: int, code: str, message: str, extra: dict[str, str]
    ) -> bool:
        body = error_body(status, code, message)
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
                 "Content-Type: application/json; charset=utf-8",
                 f"Content-Length: {len(body)}",
                 *(f"{k}: {v}" for k, v in extra.items())]  # fmt: skip
        if head.close:
            lines.append("Connection: close")
        self.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        self._log(head, status)
        return not head.close

    def _log(self, head: RequestHead, status: int) -> None:
        if self._fast.access_log:
            peer = self.transport.get_extra_info("peername") if self.transport else None
            access_log.info(
                '%s "%s %s HTTP/1.1" %d', peer[0] if peer else "-", head.method, head.target, status
            )


async def _find(stream: _Stream, needle: bytes, wait: float) -> int:
    while (index := stream.buffer.find(needle)) < 0:
        if len(stream.buffer) > MAX_HEAD:
            raise _Closed
        await stream.more(wait)
    return index


def _response(
    head: RequestHead, status: int, reason: str, version: str, headers: Headers
) -> _Response:
    names = {normalise(k) for k, _ in headers}
    tokens = {
        t.strip().lower() for k, v in headers if normalise(k) == "connection" for t in v.split(",")
    }
    reusable = version == "HTTP/1.1" and "close" not in tokens
    kept = for_client(headers)
    extra: list[str] = []
    length = 0
    if head.method == "HEAD" or status in (204, 304):
        framing = "none"
    elif "transfer-encoding" in names:
        codings = [
            t.strip().lower()
            for k, v in headers
            if normalise(k) == "transfer-encoding"
            for t in v.split(",")
        ]
        if codings[-1:] != ["chunked"]:
            framing, reusable = "close", False
        else:
            framing = "chunked"
            extra.append("Transfer-Encoding: chunked")
        kept = [(k, v) for k, v in kept if normalise(k) != "content-length"]
    elif "content-length" in names:
        values = {v for k, v in headers if normalise(k) == "content-length"}
        if len(values) != 1 or not next(iter(values)).isdigit():
            raise UpstreamUnavailable("the upstream answered with an invalid Content-Length")
        framing, length = "length", int(next(iter(values)))
    else:
        framing, reusable = "close", False
    if framing == "close" or head.close:
        extra.append("Connection: close")
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in kept), *extra]
    return _Response(
        status, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), framing, length, reusable
    )


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class FastSite(web.TCPSite):
    """A TCP site whose connections start in the fast lane."""

    def __init__(self, runner: web.BaseRunner, fast: FastPath, **kwargs: Any) -> None:
        super().__init__(runner, **kwargs)
        self._fast = fast

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        fallback = self._runner.server
        assert fallback is not None
        fast = self._fast
        self._server = await loop.create_server(
            lambda: FrontProtocol(fast, fallback),
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
