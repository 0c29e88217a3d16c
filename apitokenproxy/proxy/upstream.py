"""One connection to the upstream, its responses read by llhttp (``pool.py`` holds them).

Responses are parsed by ``httptools`` (llhttp, the parser of Node.js and
uvicorn); nothing here splits strings. What llhttp refuses is a 502. As in
uvicorn's protocols, the parser's callbacks decide by setting state (the
error to answer with, or that the rest is unsolicited); an exception only
stops llhttp, and ``data_received`` reads the state, never the exception.

Pool hygiene is the point: a connection goes back to the pool only when its
response was complete, the upstream kept it alive, and not one byte more
arrived. Anything an idle pooled connection receives (a second response, the
rest of an over-long body, a body after HEAD, 204 or 304) closes it, so
unsolicited bytes can never become the next user's answer. Any error in a
response closes its connection and frees its slot.

Foreign errors (socket errors, timeouts, llhttp's) are translated here, once
(``translate``), into the ``UpstreamUnavailable`` kinds (502) and ``UpstreamTimeout`` (504).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import TYPE_CHECKING, Protocol

import aiohttp
import httptools

from ..errors import (
    ApitokenproxyError,
    ClientTooSlow,
    ProxyError,
    UpstreamInvalid,
    UpstreamRefused,
    UpstreamReset,
    UpstreamTimeout,
)
from .framing import NO_BODY, UNTIL_CLOSE, Body, Headers, response_body

if TYPE_CHECKING:
    from .pool import UpstreamPool

log = logging.getLogger(__name__)

# Sent again on a fresh connection if a reused one died unanswered: only
# methods that are safe to repeat whatever the upstream did.
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})

REFUSED = "the upstream refused the connection or cannot be reached"
NO_ANSWER = "the upstream closed the connection without answering"
INVALID = "the upstream answered with invalid HTTP"
SLOW_CONNECT = "the upstream did not accept a connection in time"
SLOW_ANSWER = "the upstream did not answer in time"


def translate(exc: BaseException) -> ProxyError:
    """The one table from foreign failures to the answer the client gets."""
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout(SLOW_ANSWER)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamRefused(REFUSED)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return UpstreamReset(NO_ANSWER)
    if isinstance(exc, aiohttp.ClientError):
        return UpstreamInvalid(f"{INVALID} ({type(exc).__name__})")
    if isinstance(exc, OSError | ssl.SSLError):
        return UpstreamRefused(REFUSED)
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


class _Stop(ApitokenproxyError):
    """Raised in a callback only to stop llhttp; the callback has set the state that says why."""


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
        # Set by the callbacks: bytes after the end of the answer (the connection
        # closes, the answer stands), or the error the exchange fails with.
        self._unsolicited = False
        self._error: ProxyError | None = None
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
            if self._error is not None:
                self._fail(self._error)
                return
            if not self._unsolicited:
                self._fail(UpstreamInvalid(f"{INVALID} ({exc})"))
                return
        if self._unsolicited:
            self._keep = False
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
            self._unsolicited = True
            raise _Stop
        self._headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        assert self._parser is not None and self._sink is not None
        status = self._parser.get_status_code()
        if status < 100:
            self._stop(UpstreamInvalid(f"the upstream answered with status {status}"))
        if status < 200:
            if status == 101:
                self._stop(UpstreamInvalid("the upstream switched protocols unasked"))
            self._informational = True  # 100 Continue, 103 Early Hints: the answer follows
            return
        body, length = response_body(self._method, status, self._headers)
        self._body = body
        self._keep = self._parser.should_keep_alive() and body is not UNTIL_CLOSE
        try:
            self._sink.response_head(status, self._headers, body, length)
        except ProxyError as exc:
            self._stop(exc)
        except Exception:
            log.exception("response handling failed")
            self._stop(UpstreamInvalid(INVALID))
        self._started = True
        if body is NO_BODY:
            # llhttp would read a HEAD answer's declared body; there is none,
            # and any byte that comes is unsolicited.
            self._done = True

    def on_body(self, data: bytes) -> None:
        if self._done:
            self._unsolicited = True
            raise _Stop
        assert self._sink is not None
        try:
            self._sink.response_body(data)
        except ProxyError as exc:
            self._stop(exc)
        except Exception:
            log.exception("response handling failed")
            self._stop(UpstreamInvalid(INVALID))

    def _stop(self, error: ProxyError) -> None:
        self._error = error
        raise _Stop

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
        self._keep = self._unsolicited = False
        self._error = None
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
            self._pool.discard(self)

    def _finish(self) -> None:
        # An idle connection's lazy timer finds no sink and lapses.
        sink, self._sink = self._sink, None
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
            holder = self.holder
            self._pool.discard(self)
            self._pool.resend(sink, self._method, data, holder)
            return
        self._fail(UpstreamReset(NO_ANSWER))

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

    def close(self) -> None:
        self.alive = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.transport.close()
