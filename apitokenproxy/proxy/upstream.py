"""The one pool of upstream connections both lanes send through, read by llhttp.

Responses are parsed by ``httptools`` (llhttp, the parser of Node.js and
uvicorn); nothing here splits strings. What llhttp refuses is a 502.

Pool hygiene is the point of this module: a connection goes back to the pool
only when its response was complete, the upstream kept it alive, and not one
byte more arrived. Anything an idle pooled connection receives (a second
response, the rest of an over-long body, a body after HEAD, 204 or 304)
closes it, so unsolicited bytes can never become the next user's answer. Any
error in a response closes its connection and frees its slot.

Foreign errors (socket errors, timeouts, llhttp's) are translated here, once,
into ``UpstreamUnavailable`` (502) and ``UpstreamTimeout`` (504).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
import httptools

from ..errors import (
    ClientTooSlow,
    ProxyError,
    TooManyInFlight,
    UpstreamBusy,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from ..live import ClientTimeouts, Live
from .framing import NO_BODY, UNTIL_CLOSE, Body, Headers, request_head, response_body

log = logging.getLogger(__name__)

# Sent again on a fresh connection if a reused one died unanswered: only
# methods that are safe to repeat whatever the upstream did.
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})

REFUSED = "the upstream refused the connection or cannot be reached"
NO_ANSWER = "the upstream closed the connection without answering"
INVALID = "the upstream answered with invalid HTTP"
SLOW_CONNECT = "the upstream did not accept a connection in time"
SLOW_ANSWER = "the upstream did not answer in time"
# The proxy's own REST calls get small JSON answers; anything larger is wrong.
MAX_FETCHED = 4 * 1024 * 1024


def translate(exc: BaseException) -> ProxyError:
    """The one table from foreign failures to the answer the client gets."""
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout(SLOW_ANSWER)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamUnavailable(REFUSED, kind="refused")
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return UpstreamUnavailable(NO_ANSWER, kind="reset")
    if isinstance(exc, aiohttp.ClientError):
        return UpstreamUnavailable(f"{INVALID} ({type(exc).__name__})")
    if isinstance(exc, OSError | ssl.SSLError):
        return UpstreamUnavailable(REFUSED, kind="refused")
    if isinstance(exc, ProxyError):
        return exc
    raise exc


class ResponseSink(Protocol):
    """Who receives a response: a lane's client connection, in event-loop callbacks."""

    def attached(self, upstream: UpstreamConnection) -> None:
        """The request went out on ``upstream`` (to pause it when the client is slow)."""

    def response_head(self, status: int, headers: Headers, body: Body, length: int | None) -> None:
        """The final (non-1xx) head; may raise ProxyError to refuse it (502)."""

    def response_body(self, data: bytes) -> None: ...

    def response_flush(self) -> None:
        """One read from the upstream is handled: send on what it gave."""

    def response_end(self) -> None: ...

    def response_failed(self, error: ProxyError, *, started: bool) -> None:
        """The exchange failed; ``started`` once response_head was called."""


class _Unsolicited(Exception):
    """Bytes after the end of the response: the connection is closed, the answer stands."""


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection; carries one exchange at a time."""

    def __init__(self, pool: UpstreamPool) -> None:
        self._pool = pool
        self._loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.reused = False
        self.alive = True
        self.counted = True
        self._sink: ResponseSink | None = None
        self._parser: httptools.HttpResponseParser | None = None
        # Whether llhttp saw the last answer end, so the parser stands at the next
        # message's start and serves the next exchange (a new one costs more than
        # a small request's header rewriting). Not after HEAD: llhttp, unaware of
        # the method, would still wait for the declared body.
        self._parser_ready = False
        self._method = "GET"
        self._headers: Headers = []
        self._body: Body | None = None
        self._informational = False
        self._started = False
        self._done = False
        self._keep = False
        self._received = False
        self._retry: tuple[bytes, bool] | None = None
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._paused = False
        self._paused_at = 0.0
        self._drain: asyncio.Future[None] | None = None
        self._write_paused = False
        # Whom the exchange under way is for: a client's address, or None for the
        # proxy's own calls (held: counted in the pool's shares until released).
        self.holder: str | None = None
        self.held = False

    # -- asyncio.Protocol --------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._sink is None:
            # Idle in the pool: whatever this is, it answers no request of ours.
            log.info("the upstream sent %d bytes on an idle connection; closed", len(data))
            self._pool.discard(self)
            return
        self._received = True
        self._last = self._loop.time()
        parser = self._parser
        assert parser is not None
        try:
            parser.feed_data(data)
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, _Unsolicited):
                self._keep = False
            elif isinstance(cause, ProxyError):
                self._fail(cause)
                return
            else:
                if cause is not None and not isinstance(cause, httptools.HttpParserError):
                    log.error("response handling failed", exc_info=cause)
                self._fail(UpstreamUnavailable(f"{INVALID} ({exc})"))
                return
        if self._done:
            self._finish()
        elif self._sink is not None:
            self._sink.response_flush()

    def eof_received(self) -> bool:
        self._closed()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        self._closed()
        self._pool.forget(self)
        waiter, self._drain = self._drain, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError(NO_ANSWER))

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter, self._drain = self._drain, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- llhttp callbacks ---------------------------------------------------

    def on_message_begin(self) -> None:
        if self._done:
            raise _Unsolicited
        self._headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        assert self._parser is not None and self._sink is not None
        status = self._parser.get_status_code()
        if status < 100:
            raise UpstreamUnavailable(f"the upstream answered with status {status}")
        if status < 200:
            if status == 101:
                raise UpstreamUnavailable("the upstream switched protocols unasked")
            self._informational = True  # 100 Continue, 103 Early Hints: the answer follows
            return
        body, length = response_body(self._method, status, self._headers)
        self._body = body
        self._keep = self._parser.should_keep_alive() and body is not UNTIL_CLOSE
        self._sink.response_head(status, self._headers, body, length)
        self._started = True
        if body is NO_BODY:
            # llhttp would read a HEAD answer's declared body; there is none,
            # and any byte that comes is unsolicited.
            self._done = True

    def on_body(self, data: bytes) -> None:
        if self._done:
            raise _Unsolicited
        assert self._sink is not None
        self._sink.response_body(data)

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        self._done = True
        self._parser_ready = self._method != "HEAD"

    # -- exchanges ------------------------------------------------------------

    def begin(self, sink: ResponseSink, method: str, data: bytes, *, retry: bool = False) -> None:
        """Send a request (or its head, with ``write`` and ``drain`` for the rest)."""
        self._sink = sink
        if not self._parser_ready or self._parser is None:
            self._parser = httptools.HttpResponseParser(self)
        self._parser_ready = False
        self._method = method
        self._informational = self._started = self._done = self._received = False
        self._keep = False
        self._body = None
        # A request the upstream may have dropped unseen on a reused
        # connection is sent once more, on a fresh one, if that is safe.
        self._retry = (data, True) if retry and self.reused else None
        self._last = self._loop.time()
        if self._timer is None:
            # Lazy: one timer per connection, re-armed when it fires, not per request.
            self._timer = self._loop.call_at(
                self._last + self._pool.read_timeout, self._check_timeout
            )
        sink.attached(self)
        assert self.transport is not None
        self.transport.write(data)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def drain(self) -> None:
        if not self.alive:
            raise ConnectionResetError(NO_ANSWER)
        if self._write_paused:
            self._drain = self._loop.create_future()
            await self._drain

    def pause_reading(self) -> None:
        """The exchange's receiver is slow: stop reading until it resumes. Ignored once
        the exchange is over, so a connection never waits paused in the pool."""
        if self._sink is not None and self.transport is not None and not self._paused:
            self._paused = True
            self._paused_at = self._loop.time()
            self.transport.pause_reading()
            # The lazy timer may be due only at the read timeout: a client that reads
            # nothing is cut at the (usually shorter) send timeout.
            due = self._paused_at + self._pool.timeouts.send
            timer = self._timer
            if timer is None or timer.when() > due:
                if timer is not None:
                    timer.cancel()
                self._timer = self._loop.call_at(due, self._check_timeout)

    def resume_reading(self) -> None:
        if self.transport is not None and self._paused:
            self._paused = False
            self._last = self._loop.time()
            self.transport.resume_reading()

    def abandon(self) -> None:
        """The receiver is gone mid-response: close without telling it."""
        if self._sink is not None:
            self._sink = None
            self._stop_timer()
            self._pool.discard(self)

    def _finish(self) -> None:
        sink, self._sink = self._sink, None
        self._stop_timer()
        # The receiver may have paused reading inside the last read's callbacks; an
        # idle connection must read, or the next exchange on it never hears its answer.
        self.resume_reading()
        self._pool.release(self, self._keep)
        if sink is not None:
            sink.response_end()

    def _fail(self, error: ProxyError) -> None:
        if not isinstance(error, ClientTooSlow):
            self._pool.failed(error)
        sink, self._sink = self._sink, None
        self._stop_timer()
        self._pool.discard(self)
        if sink is not None:
            if self._started:
                log.warning("upstream failed mid-response: %s", error.message)
            sink.response_failed(error, started=self._started)

    def _closed(self) -> None:
        sink = self._sink
        if sink is None:
            self._pool.discard(self)
            return
        if self._started and not self._done and self._body is UNTIL_CLOSE:
            # A body delimited by the close is complete now; any other is cut.
            self._done = True
            self._finish()
            return
        if not self._received and self._retry is not None:
            data, _ = self._retry
            self._sink = None
            self._stop_timer()
            holder = self.holder
            self._pool.discard(self)
            self._pool.resend(sink, self._method, data, holder)
            return
        self._fail(UpstreamUnavailable(NO_ANSWER, kind="reset"))

    def _check_timeout(self) -> None:
        self._timer = None
        if self._sink is None or not self.alive:
            return
        now = self._loop.time()
        if self._paused:
            # The client is slow, not the upstream; but not forever.
            send_timeout = self._pool.timeouts.send
            if now - self._paused_at >= send_timeout:
                slow = f"the client took none of its answer for {send_timeout:g} s"
                log.info("cut a connection: %s", slow)
                self._fail(ClientTooSlow(slow))
                return
            self._last = now
            due = min(now + self._pool.read_timeout, self._paused_at + send_timeout)
            self._timer = self._loop.call_at(due, self._check_timeout)
            return
        due = self._last + self._pool.read_timeout
        if now < due:
            self._timer = self._loop.call_at(due, self._check_timeout)
            return
        self._fail(UpstreamTimeout(SLOW_ANSWER))

    def _stop_timer(self) -> None:
        """The exchange is over; an idle connection's timer finds no sink and lapses."""

    def close(self) -> None:
        self.alive = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.transport.close()


def reserved_for_the_proxy(limit: int) -> int:
    """Connections kept from clients for the proxy's own REST calls: a sixteenth, at
    least one, and none in a pool too small to spare one (fewer than four)."""
    return max(1, limit // 16) if limit >= 4 else 0


class UpstreamPool:
    """Connections to one upstream, at most ``limit`` open at once (busy or idle).

    Clients share them under two rules, so that slow clients cannot take them
    all: the proxy's own calls (``fetch``: passwords, sysadmins, owners) keep
    ``reserved_for_the_proxy(limit)`` that no client exchange may use, and one
    client address may have at most ``per_client`` in use at once (0: no cap;
    beyond it, its requests wait like any other, then get 429).
    The timeouts and ``per_client`` are read from ``live`` at each use (``live.py``).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        limit: int,
        tls: ssl.SSLContext | None = None,
        live: Live | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self._host, self._port, self._tls = host, port, tls
        self._limit = limit
        self._live = live or Live()
        self._client_share = limit - reserved_for_the_proxy(limit)
        self._by_client: dict[str, int] = {}  # exchanges in use per client address
        self._clients = 0  # exchanges in use for clients, all addresses
        self._idle: list[UpstreamConnection] = []
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closing = False
        self.failures: dict[str, int] = {}  # by kind, since the start (metrics)

    @property
    def connect_timeout(self) -> float:
        return self._live.now.upstream.connect_timeout

    @property
    def read_timeout(self) -> float:
        return self._live.now.upstream.read_timeout

    @property
    def per_client(self) -> int:
        return self._live.now.upstream.per_client

    @property
    def timeouts(self) -> ClientTimeouts:
        """The client's: how long a slow client may leave its answer unread."""
        return self._live.now.client

    @property
    def in_use(self) -> int:
        return self._open - len(self._idle)

    def idle_connection(self) -> UpstreamConnection | None:
        """A pooled connection ready for a request, without waiting, or None."""
        while self._idle:
            conn = self._idle.pop()
            transport = conn.transport
            if conn.alive and transport is not None and not transport.is_closing():
                conn.reused = True
                return conn
            self.discard(conn)
        return None

    def _blocked(self, client: str | None) -> str | None:
        """Why an exchange for ``client`` (None: the proxy's own) must wait, if it must."""
        if client is None:
            return None
        if self.per_client and self._by_client.get(client, 0) >= self.per_client:
            return "client"
        if self._clients >= self._client_share:
            return "share"
        return None

    def _take(self, client: str | None) -> None:
        """Count an exchange for ``client`` in its shares (before any await, so that
        acquirers waiting for a new connection cannot all pass the same check)."""
        if client is not None:
            self._by_client[client] = self._by_client.get(client, 0) + 1
            self._clients += 1

    def _give(self, client: str | None) -> None:
        if client is not None:
            left = self._by_client[client] - 1
            if left:
                self._by_client[client] = left
            else:
                del self._by_client[client]
            self._clients -= 1
        self._wake()

    def _hold(self, conn: UpstreamConnection, client: str | None) -> None:
        self._take(client)
        conn.holder, conn.held = client, True

    def _unhold(self, conn: UpstreamConnection) -> None:
        if conn.held:
            conn.held = False
            self._give(conn.holder)

    def held_by(self, client: str) -> int:
        """Exchanges in use for ``client`` now."""
        return self._by_client.get(client, 0)

    async def acquire(self, client: str | None = None) -> UpstreamConnection:
        """A pooled connection or a new one, held for ``client`` (None: the proxy's own
        call) until released; waits while the rules above say no, but no longer than
        the connect timeout (then TooManyInFlight, 429, or UpstreamBusy, 503)."""
        deadline = self.loop.time() + self.connect_timeout
        while True:
            blocked = self._blocked(client)
            if blocked is None:
                conn = self.idle_connection()
                if conn is not None:
                    self._hold(conn, client)
                    return conn
                if self._open < self._limit:
                    break
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            timer = self.loop.call_at(deadline, _expire, waiter)
            try:
                await waiter
            except TimeoutError as exc:
                busy: ProxyError
                if blocked == "client":
                    busy = TooManyInFlight(
                        f"your address has {self.per_client} requests waiting on the "
                        f"upstream already (upstream.max_connections_per_client); retry "
                        "when one is answered"
                    )
                else:
                    busy = UpstreamBusy(
                        f"all {self._limit} upstream connections stayed in use for "
                        f"{self.connect_timeout:g} s; retry shortly"
                    )
                self.failed(busy)
                raise busy from exc
            finally:
                timer.cancel()
                if not waiter.done():
                    waiter.cancel()
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self._open += 1
        self._take(client)
        try:
            _, fresh = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: UpstreamConnection(self), self._host, self._port, ssl=self._tls
                ),
                self.connect_timeout,
            )
        except BaseException as exc:
            self._open -= 1
            self._give(client)
            error: ProxyError | None = None
            if isinstance(exc, TimeoutError):
                error = UpstreamTimeout(SLOW_CONNECT)
            elif isinstance(exc, Exception):
                error = translate(exc)
            if error is None:
                raise  # cancelled
            self.failed(error)
            raise error from exc
        fresh.holder, fresh.held = client, True
        return fresh

    def failed(self, error: ProxyError) -> None:
        """Count an upstream failure by kind (refused, reset, timeout, invalid, pool_exhausted)."""
        kind = getattr(error, "kind", "invalid")
        self.failures[kind] = self.failures.get(kind, 0) + 1

    def send(self, sink: ResponseSink, method: str, data: bytes, client: str | None = None) -> None:
        """Send a whole request for ``client`` (None: the proxy's own call); the answer
        goes to ``sink``, in callbacks."""
        if self._blocked(client) is None:
            conn = self.idle_connection()
            if conn is not None:
                self._hold(conn, client)
                conn.begin(sink, method, data, retry=method in SAFE)
                return
        self.loop.create_task(self._send_later(sink, method, data, client))

    def resend(self, sink: ResponseSink, method: str, data: bytes, client: str | None) -> None:
        """Send again on a new connection: the reused one died before answering."""
        self.loop.create_task(self._send_later(sink, method, data, client, fresh=True))

    async def _send_later(
        self,
        sink: ResponseSink,
        method: str,
        data: bytes,
        client: str | None,
        fresh: bool = False,
    ) -> None:
        try:
            conn = await (self._connect(client) if fresh else self.acquire(client))
        except ProxyError as exc:
            sink.response_failed(exc, started=False)
            return
        conn.begin(sink, method, data, retry=not fresh and method in SAFE)

    async def _connect(self, client: str | None) -> UpstreamConnection:
        # A fresh connection for a retry: drop the idle ones, which likely died too.
        while self._idle:
            self.discard(self._idle.pop())
        return await self.acquire(client)

    def release(self, conn: UpstreamConnection, reusable: bool) -> None:
        """The exchange on ``conn`` is over; pool it only if it is clean."""
        self._unhold(conn)
        transport = conn.transport
        if (
            reusable
            and not self._closing
            and conn.alive
            and transport is not None
            and not transport.is_closing()
        ):
            self._idle.append(conn)
            self._wake()
        else:
            self.discard(conn)

    def discard(self, conn: UpstreamConnection) -> None:
        """Close ``conn`` and free its slot (at most once)."""
        self._unhold(conn)
        if conn in self._idle:
            self._idle.remove(conn)
        conn.close()
        self.forget(conn)

    def forget(self, conn: UpstreamConnection) -> None:
        if conn.counted:
            conn.counted = False
            self._open -= 1
            self._wake()

    def _wake(self) -> None:
        # Every waiter looks again: which of them may go depends on whom each waits
        # for (its address's share, the clients' share, any connection at all).
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    async def fetch(
        self, method: str, target: str, headers: Headers, *, within: float
    ) -> tuple[int, Headers, bytes]:
        """A whole small exchange, for the proxy's own REST calls (``identity.py``)."""
        collector = _Collector(self.loop)
        self.send(collector, method, request_head(method, target, headers, 0))
        try:
            return await asyncio.wait_for(asyncio.shield(collector.done), within)
        except TimeoutError as exc:
            collector.abandon()
            raise UpstreamTimeout(SLOW_ANSWER) from exc

    def close(self) -> None:
        self._closing = True
        while self._idle:
            self.discard(self._idle.pop())


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def pool_for(
    url: str,
    *,
    limit: int = 256,
    ca_file: str = "",
    verify_tls: bool = True,
    live: Live | None = None,
) -> UpstreamPool:
    """The pool for an ``http://`` or ``https://`` upstream URL (its path is the caller's).

    An https upstream's certificate is checked against ``ca_file`` (or the
    system's CAs) and its host name, unless ``verify_tls`` is false.
    ``live`` holds its timeouts and the cap on one client address's connections.
    """
    parts = urlsplit(url)
    tls: ssl.SSLContext | None = None
    if parts.scheme == "https":
        tls = ssl.create_default_context(cafile=ca_file or None)
        if not verify_tls:
            tls.check_hostname = False
            tls.verify_mode = ssl.CERT_NONE
    return UpstreamPool(
        parts.hostname or "localhost",
        parts.port or (443 if tls else 80),
        limit=limit,
        tls=tls,
        live=live,
    )


class _Collector:
    """A ResponseSink that gathers a whole (small) response."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.done: asyncio.Future[tuple[int, Headers, bytes]] = loop.create_future()
        self._upstream: UpstreamConnection | None = None
        self._status = 0
        self._headers: Headers = []
        self._body = bytearray()

    def attached(self, upstream: UpstreamConnection) -> None:
        self._upstream = upstream

    def response_head(self, status: int, headers: Headers, body: Body, length: int | None) -> None:
        self._status, self._headers = status, headers

    def response_body(self, data: bytes) -> None:
        self._body += data
        if len(self._body) > MAX_FETCHED:
            raise UpstreamUnavailable("the upstream's answer to the proxy's own call is too large")

    def response_flush(self) -> None:
        pass

    def response_end(self) -> None:
        self._upstream = None
        if not self.done.done():
            self.done.set_result((self._status, self._headers, bytes(self._body)))

    def response_failed(self, error: ProxyError, *, started: bool) -> None:
        self._upstream = None
        if not self.done.done():
            self.done.set_exception(error)

    def abandon(self) -> None:
        upstream, self._upstream = self._upstream, None
        if upstream is not None:
            upstream.abandon()
