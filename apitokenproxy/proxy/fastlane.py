"""The fast lane: plain HTTP/1.1 requests parsed by llhttp and relayed in callbacks.

Profiling showed aiohttp's server and client machinery costing far more than
the proxy's own decisions, so ordinary requests take a shorter road. Every
connection starts here (``FrontConnection``); ``httptools`` (llhttp) parses
each request. ``heads.py`` says which heads are refused (the aiohttp lane's
rule too) and which stay here; each of those becomes a ``cycle.Cycle``, which
admits, rewrites, sends and answers it. Any other request hands the
connection, from that request's first byte, to aiohttp for good
(``handoff.py``, then ``forwarder.py``). What llhttp refuses gets the JSON 400
and the connection is closed. As in uvicorn, the parser's callbacks decide by
setting state (``_verdict``); an exception only stops llhttp.

Requests are served one at a time. Bytes that arrive while one is in flight
wait unparsed; a request that starts in the same read as the previous one
ended (pipelining) hands the connection to aiohttp, whose parser queues
pipelined requests, so a hand-off always begins at a request's first byte.
While a token is in the verified cache, a request is served without a
coroutine; a cache miss awaits the gate in a task.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import NoReturn

import httptools

from ..auth.gate import AS_IS, Decision, Gate
from ..errors import ApitokenproxyError, ProxyError
from ..live import Live
from ..ops.exchange import Recorder
from ..ops.requestid import NORMALISED as REQUEST_ID_NAME
from ..ops.requestid import request_id
from .client import ConnectionViews
from .cycle import Cycle
from .deadline import Deadline
from .framing import MALFORMED, Headers, origin_form
from .headers import Injection
from .heads import (
    FAST_BODY_MAX,
    HAND_OFF_HEADERS,
    MAX_HEAD,
    MAX_HEADERS,
    MAX_LINE,
    path_stays_fast,
    refusal,
    stays_fast,
)
from .pacing import body_deadline, too_slow
from .pool import UpstreamPool

log = logging.getLogger(__name__)

# Unparsed bytes kept while a request is in flight before the client is paused.
STASH_MAX = 64 * 1024


class _Stop(ApitokenproxyError):
    """Raised in a callback only to stop llhttp; ``_verdict`` says why."""


# The verdict that the request is aiohttp's to serve.
HAND_OFF = "hand off"
# The method a refused request is logged with until llhttp has read one (as aiohttp does).
UNPARSED = "UNKNOWN"


class FastLane:
    """What the fast lane shares in one worker process."""

    def __init__(
        self,
        *,
        gate: Gate,
        injection: Injection,
        pool: UpstreamPool,
        live: Live,
        served_here: Callable[[str], bool],
        recorder: Recorder,
    ) -> None:
        self.gate = gate
        self.injection = injection
        self.pool = pool
        self.live = live
        # Whether a path is one the application serves itself (the token API, health).
        self.served_here = served_here
        self.recorder = recorder
        self.connections: set[FrontConnection] = set()
        self.closing = False
        self._quiet: asyncio.Event | None = None  # set once drained, while closing
        # Requests answered here, and connections handed to aiohttp.
        self.served = 0
        self.handed_off = 0

    async def drained(self) -> None:
        """Return once no connection has a request in flight (``close_idle`` first)."""
        while any(conn.in_request for conn in self.connections):
            self._quiet = asyncio.Event()
            await self._quiet.wait()

    def request_ended(self) -> None:
        """A connection's request ended while the lane is closing."""
        if self._quiet is not None and not any(c.in_request for c in self.connections):
            self._quiet.set()

    def close_idle(self) -> None:
        """Stop taking requests: idle connections close now, busy ones after their answer."""
        self.closing = True
        for conn in list(self.connections):
            if not conn.in_request:
                conn.close()

    def abort_all(self) -> None:
        for conn in list(self.connections):
            conn.abort()


class FrontConnection(asyncio.Protocol):
    """One client connection: served here while its requests are plain, else by aiohttp."""

    def __init__(self, lane: FastLane, fallback: Callable[[], asyncio.Protocol]) -> None:
        self.lane = lane
        self._fallback = fallback
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.peer = "unknown"
        self._parser = httptools.HttpRequestParser(self)
        # Bytes after a request that says Connection: close are ignored (the
        # connection closes after its answer, RFC 9112 §9.6) rather than
        # turning a served request into a 400.
        self._parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self._in_message = False
        # Raw bytes of the request being parsed, kept for a hand-off.
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._stash = bytearray()  # bytes received while a request is in flight
        self._deadline = Deadline(self._loop, self._expire)
        self._read_paused = False
        self.busy = False
        self.cycle: Cycle | None = None  # the request in flight
        # The request being parsed.
        self._verdict: str | ProxyError | None = None
        self._begun = 0
        self._url = b""
        self._headers: Headers = []
        self._host = ""
        self._authorization: list[str] = []
        self._request_ids: list[str] = []
        self._method = UNPARSED
        self._target = "/"
        self._body = bytearray()
        self._ready = False
        self._head_done = True  # no head in progress
        self._keep_alive = True
        self._views = ConnectionViews(self.peer, "http")  # set when connected
        # The gate's reading of the last Authorization header, reused while a
        # keep-alive client repeats it (the token is still checked each time).
        self._decided_for: list[str] | None = None
        self._decision: Decision = AS_IS

    @property
    def in_request(self) -> bool:
        """Whether a request has begun to arrive and is not answered yet: a clean stop
        lets it finish (an upload's body may still be coming)."""
        return self.busy or self._in_message

    @property
    def open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    # -- asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = str(peer[0])
        scheme = "https" if transport.get_extra_info("ssl_object") is not None else "http"
        self._views = ConnectionViews(self.peer, scheme)
        self.lane.connections.add(self)
        self._deadline.after(self.lane.live.now.client.header)

    def data_received(self, data: bytes) -> None:
        if self.busy:
            self._stash += data
            if len(self._stash) > STASH_MAX and not self._read_paused and self.transport:
                self._read_paused = True
                self.transport.pause_reading()
            return
        self._feed(data)

    def eof_received(self) -> bool:
        if not self.busy:
            self.close()
        return True  # half-closed: an answer in flight can still be written

    def connection_lost(self, exc: Exception | None) -> None:
        self.lane.connections.discard(self)
        self._deadline.cancel()
        cycle, self.cycle = self.cycle, None
        if cycle is not None:
            cycle.abandon()
        self._idle()

    def pause_writing(self) -> None:
        if self.cycle is not None:
            self.cycle.pause_upstream()

    def resume_writing(self) -> None:
        if self.cycle is not None:
            self.cycle.resume_upstream()

    # -- reading requests ------------------------------------------------

    def _feed(self, data: bytes) -> None:
        if not self._in_message and not self._pending:
            # A request's time runs from its first byte, as nginx's $request_time does.
            self._begun = time.perf_counter_ns()
        self._pending.append(data)
        self._pending_size += len(data)
        if not self._head_done and self._pending_size > MAX_HEAD:
            self._hand_off()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            verdict, self._verdict = self._verdict, None
            if verdict is HAND_OFF:
                self._hand_off()
            elif isinstance(verdict, ProxyError):
                # Refused mid-parse: the rest of the stream means nothing.
                self._partial().refuse(verdict, close=True)
            else:
                log.info("refused malformed request from %s: %s", self.peer, type(exc).__name__)
                self._partial().reply(400, "malformed_request", MALFORMED, close=True)
            return
        if self._ready:
            self._ready = False
            self._pending.clear()
            self._pending_size = 0
            self._serve()
        elif not self._in_message:
            # Only the blank lines llhttp skips between requests. (Once a
            # message has begun, even a read holding just its method is kept.)
            self._pending.clear()
            self._pending_size = 0

    def _stop(self, verdict: str | ProxyError) -> NoReturn:
        self._verdict = verdict
        raise _Stop

    def on_message_begin(self) -> None:
        if self._ready:
            # A second request in the read that ended the first: pipelining.
            self._stop(HAND_OFF)
        self._in_message = True
        self._url = b""
        self._headers = []
        self._authorization = []
        self._request_ids = []
        self._host = ""
        self._method, self._target = UNPARSED, "/"
        self._body.clear()
        self._head_done = False
        self._deadline.after(self.lane.live.now.client.header)

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_LINE:
            self._stop(HAND_OFF)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))
        if len(self._headers) > MAX_HEADERS or len(name) + len(value) > MAX_LINE:
            self._stop(HAND_OFF)

    def on_headers_complete(self) -> None:
        parser = self._parser
        hosts = 0
        length = 0
        hand_off = False
        for name, value in self._headers:
            key = name.lower()
            if key == "host":
                hosts += 1
                self._host = value
            elif key == "authorization":
                self._authorization.append(value)
            elif key == "content-length":
                length = int(value)
            elif key == REQUEST_ID_NAME:
                self._request_ids.append(value)
            elif key in HAND_OFF_HEADERS:
                hand_off = True
        version = parser.get_http_version()
        refused = refusal(version, hosts)
        if refused is not None:
            self._stop(refused)
        method = parser.get_method().decode("ascii")
        if (
            hand_off
            or length > FAST_BODY_MAX
            or not stays_fast(method, version, parser.should_upgrade())
        ):
            self._stop(HAND_OFF)
        try:
            target = origin_form(method, self._url)
        except ProxyError as exc:
            self._stop(exc)
        self._method, self._target = method, target
        if not path_stays_fast(target.partition("?")[0].lower(), self.lane.served_here):
            self._stop(HAND_OFF)
        if length:
            # From the end of the head, the body's pace rules (proxy/pacing.py), not the
            # header timeout.
            self._deadline.at_most(self._loop.time() + self.lane.live.now.client.body)
        self._head_done = True

    def on_body(self, body: bytes) -> None:
        self._body += body
        timeouts = self.lane.live.now.client
        self._deadline.at_most(
            body_deadline(
                self._deadline.at or self._loop.time(),
                self._loop.time(),
                len(body),
                idle=timeouts.body,
                min_rate=timeouts.body_min_rate,
            )
        )

    def on_message_complete(self) -> None:
        self._keep_alive = self._parser.should_keep_alive()
        self._ready = True
        self._in_message = False

    # -- serving ------------------------------------------------------------

    def _serve(self) -> None:
        self.busy = True
        self._deadline.clear()
        cycle = self.cycle = Cycle(
            self,
            self._begun,
            self._method,
            self._target,
            self._headers,
            bytes(self._body),
            self._keep_alive,
        )
        authorization = self._authorization
        try:
            if authorization == self._decided_for:
                decision = self._decision  # the same header as the last request's
            else:
                decision = self.lane.gate.decide(authorization)
                self._decided_for, self._decision = authorization, decision
        except ProxyError as exc:
            view = self._views.view(self._host, self._headers, self.lane.live.now.trusted)
            cycle.client = view.address
            cycle.refuse(exc)
            return
        cycle.serve(
            self._views.view(self._host, self._headers, self.lane.live.now.trusted),
            request_id(self._request_ids),
            decision,
        )

    def _partial(self) -> Cycle:
        """A cycle for a request refused before it was whole, to answer and log it."""
        self.busy = True
        cycle = self.cycle = Cycle(
            self, self._begun, self._method, self._target, [], bytes(self._body), False
        )
        cycle.client = self.peer  # its headers, if any, are not to be believed half-read
        return cycle

    def cycle_done(self, cycle: Cycle) -> None:
        """``cycle`` is answered and recorded: close, or wait for the next request."""
        lane = self.lane
        lane.served += 1
        self.cycle = None
        self._idle()
        if not cycle.keep_alive or lane.closing:
            self.close()
            return
        self._deadline.after(lane.live.now.client.keepalive)
        if self._read_paused and self.transport is not None:
            self._read_paused = False
            self.transport.resume_reading()
        if self._stash:
            data = bytes(self._stash)
            self._stash.clear()
            self._feed(data)

    # -- the connection -----------------------------------------------------

    def _idle(self) -> None:
        self.busy = False
        if self.lane.closing:
            self.lane.request_ended()

    def _hand_off(self) -> None:
        """Give this connection, from the current request's first byte, to aiohttp."""
        transport = self.transport
        assert transport is not None
        self.lane.connections.discard(self)
        self.lane.handed_off += 1
        if self.lane.closing:
            self.lane.request_ended()  # aiohttp's to finish now (proxy/handoff.py counts it)
        self._deadline.cancel()
        handler = self._fallback()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if self._pending:
            handler.data_received(b"".join(self._pending))
            self._pending.clear()
        if self._read_paused:
            transport.resume_reading()

    def _expire(self) -> None:
        if self.busy:
            return
        if self._head_done and self._in_message:
            # The head is in, the body is not: say why the request is refused.
            self._partial().refuse(too_slow(self.lane.live.now.client), close=True)
            return
        log.debug("closing %s: no complete request head in time", self.peer)
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
