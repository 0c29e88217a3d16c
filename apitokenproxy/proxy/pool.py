"""The one pool of upstream connections both lanes and the proxy's own calls send through.

Connections (``upstream.py``) are opened on demand up to a limit, kept alive
while clean, and shared under two rules so that slow clients cannot take
them all (``UpstreamPool``). ``send`` is the callback road (the answer goes
to a ``ResponseSink``); ``fetch`` a whole small exchange for the proxy's own
REST calls (``auth/identity.py``).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from urllib.parse import urlsplit

from ..errors import (
    ProxyError,
    TooManyInFlight,
    UpstreamBusy,
    UpstreamError,
    UpstreamInvalid,
    UpstreamTimeout,
)
from ..live import ClientTimeouts, Live
from .framing import Body, Headers, request_head
from .upstream import SAFE, SLOW_ANSWER, SLOW_CONNECT, ResponseSink, UpstreamConnection, translate

# The proxy's own REST calls get small JSON answers; anything larger is wrong.
MAX_FETCHED = 4 * 1024 * 1024


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
        self.failures: dict[str, int] = {}  # by label, since the start (metrics)

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
        per_client = self._live.now.upstream.per_client
        if per_client and self._by_client.get(client, 0) >= per_client:
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
        """Count an upstream failure by its label (refused, reset, timeout, invalid,
        pool_exhausted, client_limit); anything else counts as invalid."""
        label = error.label if isinstance(error, UpstreamError) else UpstreamInvalid.label
        self.failures[label] = self.failures.get(label, 0) + 1

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
        """A whole small exchange, for the proxy's own REST calls (``auth/identity.py``)."""
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
            raise UpstreamInvalid("the upstream's answer to the proxy's own call is too large")

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
