"""The fast lane: plain HTTP/1.1 requests parsed by llhttp and relayed in callbacks.

Profiling showed aiohttp's server and client machinery costing far more than
the proxy's own decisions, so ordinary requests take a shorter road. Every
connection starts here (``FrontConnection``); ``httptools`` (llhttp) parses
each request, and nothing here splits strings. A request that llhttp accepts
and that is plain -- HTTP/1.1, an origin-form target of visible ASCII, one
Host, no ``Transfer-Encoding``, ``Upgrade`` or ``Expect``, a body of at most
``FAST_BODY_MAX`` bytes, a path that cannot route to the token API or the
health prefix -- is admitted by the same ``Gate``, rewritten by the same
``headers.Injection``, framed by ``framing`` and sent through the shared
``UpstreamPool``. Any other request hands the connection, from the first
byte of that request, to aiohttp for good (``forwarder.py`` then serves it).
What llhttp refuses gets the JSON 400 and the connection is closed.

Requests are served one at a time. Bytes that arrive while one is in flight
wait unparsed; a request that starts in the same read as the previous one
ended (pipelining) hands the connection to aiohttp, whose parser queues
pipelined requests, so a hand-off always begins at a request's first byte.

While a token is in the verified cache, a request is served without a
coroutine: parse, admit, rewrite, send and relay all run in event-loop
callbacks. A cache miss awaits the gate in a task.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import httptools
from aiohttp import web
from multidict import CIMultiDict

from ..auth.gate import AS_IS, Admission, Decision, Gate, account
from ..errors import BadRequest, ProxyError
from ..live import ClientTimeouts, Live
from ..networks import Networks
from ..ops.accesslog import AccessLog, loggable_path
from ..ops.metrics import Metrics
from ..ops.requestid import HEADER as REQUEST_ID
from ..ops.requestid import NORMALISED as REQUEST_ID_NAME
from ..ops.requestid import new_request_id, request_id
from .client import ClientView, client_view
from .framing import (
    CHUNKED,
    LAST_CHUNK,
    MALFORMED,
    ONLY_HTTP_1,
    UNTIL_CLOSE,
    Body,
    Headers,
    chunk,
    error,
    origin_form,
    request_head,
)
from .framing import response_head as frame_response_head
from .headers import Injection, for_client
from .pacing import body_deadline, too_slow
from .upstream import UpstreamConnection, UpstreamPool

log = logging.getLogger(__name__)

FAST_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
FAST_BODY_MAX = 64 * 1024
# Unparsed bytes kept while a request is in flight before the client is paused.
STASH_MAX = 64 * 1024
# Heads larger than this, or with more headers, are aiohttp's to refuse with
# its own limits (8190-byte lines, as Tomcat's default), so both lanes agree.
MAX_HEAD = 16 * 1024
MAX_HEADERS = 100
MAX_LINE = 8190
_HAND_OFF_HEADERS = frozenset({"transfer-encoding", "upgrade", "expect"})


class _HandOff(Exception):
    """This request is aiohttp's to serve."""


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
        access_log: AccessLog,
        metrics: Metrics,
    ) -> None:
        self.gate = gate
        self.injection = injection
        self.pool = pool
        self.live = live
        # Whether a path is one the application serves itself (the token API, health).
        self.served_here = served_here
        self.access_log = access_log
        self.metrics = metrics
        self.connections: set[FrontConnection] = set()
        self.closing = False
        # Requests answered here, and connections handed to aiohttp.
        self.served = 0
        self.handed_off = 0

    @property
    def trusted(self) -> Networks:
        return self.live.now.trusted

    @property
    def timeouts(self) -> ClientTimeouts:
        return self.live.now.client

    async def shutdown(self, grace: float) -> None:
        """Stop taking requests, let those in flight finish, then close what is left."""
        self.closing = True
        for conn in list(self.connections):
            if not conn.busy:
                conn.close()
        deadline = asyncio.get_running_loop().time() + grace
        while any(c.busy for c in self.connections):
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.abort()


class FrontConnection(asyncio.Protocol):
    """One client connection: served here while its requests are plain, else by aiohttp."""

    def __init__(self, lane: FastLane, fallback: Callable[[], asyncio.Protocol]) -> None:
        self._lane = lane
        self._fallback = fallback
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self._peer = "unknown"
        self._scheme = "http"
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
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        self._read_paused = False
        self.busy = False
        # The request being parsed or served.
        self._url = b""
        self._headers: Headers = []
        self._host = ""
        self._authorization: list[str] = []
        self._view_cache: ClientView | None = None
        # The gate's reading of the last Authorization header, reused while a
        # keep-alive client repeats it (the token is still checked each time).
        self._decided_for: list[str] | None = None
        self._decision: Decision = AS_IS
        self._body = bytearray()
        self._ready = False
        self._head_done = True  # no head in progress
        self._method = "GET"
        self._target = "/"
        self._keep_alive = True
        # The exchange in flight.
        self._upstream: UpstreamConnection | None = None
        self._chunked = False
        self._status = 0
        self._out: list[bytes] = []
        self._admitting: asyncio.Task[None] | None = None
        # Headers the admission adds to the answer (the token's expiry).
        self._extra: tuple[tuple[str, str], ...] = ()
        self._by_token = False  # the answer then keeps no Set-Cookie (headers.for_client)
        # What the access log says of the request in flight.
        self._request_ids: list[str] = []
        self._request_id = ""
        self._client = ""
        # Durations come from perf_counter_ns: the event loop's clock has a
        # millisecond's resolution under uvloop.
        self._begun = 0
        self._sent_at = 0
        self._upstream_seconds: float | None = None
        self._bytes_out = 0
        self._decided: Decision | None = None
        self._admission: Admission | None = None
        self._refusal: str | None = None

    # -- asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if peer:
            self._peer = str(peer[0])
        self._scheme = "https" if transport.get_extra_info("ssl_object") is not None else "http"
        self._lane.connections.add(self)
        self._arm(self._lane.timeouts.header)

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
        self._lane.connections.discard(self)
        self._disarm()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._upstream is not None:
            self._upstream.abandon()
            self._upstream = None
        if self._admitting is not None:
            self._admitting.cancel()
        self.busy = False

    def pause_writing(self) -> None:
        if self._upstream is not None:
            self._upstream.pause_reading()

    def resume_writing(self) -> None:
        if self._upstream is not None:
            self._upstream.resume_reading()

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
            cause = exc.__context__
            if isinstance(cause, _HandOff):
                self._hand_off()
            elif isinstance(cause, ProxyError):
                # Refused mid-parse: the rest of the stream means nothing.
                self._refuse(cause, close=True)
            else:
                log.info("refused malformed request from %s: %s", self._peer, type(exc).__name__)
                self._reply(400, "malformed_request", MALFORMED, close=True)
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

    def on_message_begin(self) -> None:
        if self._ready:
            # A second request in the read that ended the first: pipelining.
            raise _HandOff
        self._in_message = True
        self._url = b""
        self._headers = []
        self._authorization = []
        self._host = ""
        self._body.clear()
        self._head_done = False
        self._request_ids = []
        self._request_id = self._client = ""
        self._upstream_seconds = None
        self._bytes_out = 0
        self._decided = self._admission = self._refusal = None
        self._arm(self._lane.timeouts.header)

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_LINE:
            raise _HandOff

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))
        if len(self._headers) > MAX_HEADERS or len(name) + len(value) > MAX_LINE:
            raise _HandOff

    def on_headers_complete(self) -> None:
        parser = self._parser
        version = parser.get_http_version()
        if version not in ("1.0", "1.1"):
            # llhttp reads "GET /x\n" as HTTP/0.9; no client of Jira speaks it.
            raise BadRequest(ONLY_HTTP_1)
        if version != "1.1" or parser.should_upgrade():
            raise _HandOff
        method = parser.get_method().decode("ascii")
        if method not in FAST_METHODS:
            raise _HandOff
        self._method = method
        self._target = origin_form(method, self._url)
        path = self._target.partition("?")[0].lower()
        if "%" in path or "//" in path or "/." in path:
            raise _HandOff  # aiohttp decodes and normalises these before routing
        if self._lane.served_here(path):
            raise _HandOff
        hosts = 0
        for name, value in self._headers:
            key = name.lower()
            if key == "host":
                hosts += 1
                self._host = value
            elif key == "authorization":
                self._authorization.append(value)
            elif key == "content-length":
                length = int(value)
                if length > FAST_BODY_MAX:
                    raise _HandOff
                if length:
                    self._body_began()
            elif key == REQUEST_ID_NAME:
                self._request_ids.append(value)
            elif key in _HAND_OFF_HEADERS:
                raise _HandOff
        if hosts != 1:
            raise _HandOff
        self._head_done = True

    def on_body(self, body: bytes) -> None:
        self._body += body
        timeouts = self._lane.timeouts
        self._pace_body(
            body_deadline(
                self._deadline or self._loop.time(),
                self._loop.time(),
                len(body),
                idle=timeouts.body,
                min_rate=timeouts.body_min_rate,
            )
        )

    def _body_began(self) -> None:
        # From the end of the head, the body's pace rules (proxy/pacing.py), not the
        # header timeout.
        self._pace_body(self._loop.time() + self._lane.timeouts.body)

    def _pace_body(self, deadline: float) -> None:
        self._deadline = deadline
        timer = self._timer
        if timer is not None and timer.when() > deadline:
            # The lazy timer only ever moves later by itself.
            timer.cancel()
            self._timer = None
        if self._timer is None:
            self._timer = self._loop.call_at(deadline, self._expire)

    def on_message_complete(self) -> None:
        self._keep_alive = self._parser.should_keep_alive()
        self._ready = True
        self._in_message = False

    # -- serving ------------------------------------------------------------

    def _serve(self) -> None:
        self.busy = True
        self._disarm()
        headers = self._headers
        view = self._view(headers)
        self._client = view.address
        self._request_id = request_id(self._request_ids)
        gate = self._lane.gate
        try:
            if self._authorization == self._decided_for:
                decision = self._decision  # the same header as the last request's
            else:
                decision = gate.decide(self._authorization)
                self._decided_for, self._decision = self._authorization, decision
            self._decided = decision
            admission = gate.admit_now(decision, self._method, view.address, target=self._target)
        except ProxyError as exc:
            self._refuse(exc)
            return
        if admission is None:
            self._admitting = self._loop.create_task(self._admit_later(decision, headers, view))
            return
        self._forward(admission, headers, view)

    def _view(self, headers: Headers) -> ClientView:
        host = self._host
        trusted = self._lane.trusted
        if not trusted:
            # Decided by the peer and Host alone: the same for every request
            # of a connection that keeps its Host.
            view = self._view_cache
            if view is None or view.host != host:
                view = client_view(
                    self._peer, {}, (), scheme=self._scheme, host=host, trusted=trusted
                )
                self._view_cache = view
            return view
        multi = CIMultiDict(headers)
        return client_view(
            self._peer,
            multi,
            multi.getall("X-Forwarded-For", []),
            scheme=self._scheme,
            host=host,
            trusted=trusted,
        )

    async def _admit_later(self, decision: Decision, headers: Headers, view: ClientView) -> None:
        try:
            admission = await self._lane.gate.admit(
                decision, self._method, view.address, target=self._target
            )
        except ProxyError as exc:
            self._refuse(exc)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "unexpected error admitting %s %s", self._method, loggable_path(self._target)
            )
            self._reply(500, "internal_error", "internal error; see the proxy's log", close=True)
            return
        finally:
            self._admitting = None
        if self.transport is None or self.transport.is_closing():
            return
        self._forward(admission, headers, view)

    def _forward(self, admission: Admission, headers: Headers, view: ClientView) -> None:
        self._admission = admission
        try:
            outgoing = self._lane.injection.rewrite(
                headers,
                view,
                user_name=admission.user_name,
                strip_authorization=admission.strip_authorization,
                request_id=self._request_id,
            )
        except ProxyError as exc:
            self._refuse(exc)
            return
        body = bytes(self._body)
        data = request_head(self._method, self._target, outgoing, len(body)) + body
        self._extra = admission.response_headers
        self._by_token = admission.token
        self._sent_at = time.perf_counter_ns()
        self._lane.pool.send(self, self._method, data, self._client)

    # -- the upstream's answer (ResponseSink) ------------------------------------

    def attached(self, upstream: UpstreamConnection) -> None:
        self._upstream = upstream

    def response_head(self, status: int, headers: Headers, body: Body, length: int | None) -> None:
        close = not self._keep_alive or self._lane.closing
        self._upstream_seconds = (time.perf_counter_ns() - self._sent_at) / 1e9
        out = for_client(headers, self._request_id, token=self._by_token)
        if self._extra:
            out += self._extra
        head = frame_response_head(status, out, body, length, close=close)
        self._status = status
        self._chunked = body is CHUNKED or body is UNTIL_CLOSE
        # Held until the upstream's read is handled: head and body then leave
        # in one send, not two.
        self._out.append(head)

    def response_body(self, data: bytes) -> None:
        self._out.append(chunk(data) if self._chunked else data)

    def response_flush(self) -> None:
        if self._out:
            self._write(b"".join(self._out))
            self._out.clear()

    def response_end(self) -> None:
        if self._chunked:
            self._out.append(LAST_CHUNK)
        self.response_flush()
        self._done(self._status)

    def response_failed(self, error: ProxyError, *, started: bool) -> None:
        if started:
            # The head is the client's (as in the aiohttp lane); cutting the
            # connection is the only way left to say the body is incomplete.
            self.response_flush()
            self._upstream = None
            self.abort()
            return
        self._upstream_seconds = (time.perf_counter_ns() - self._sent_at) / 1e9
        self._refuse(error)

    # -- answering ----------------------------------------------------------

    def _refuse(self, exc: ProxyError, *, close: bool = False) -> None:
        if exc.status >= 500:
            path = loggable_path(self._target)  # no query, no token: as in the access log
            log.warning("%s %s -> %d: %s", self._method, path, exc.status, exc.message)
        self._refusal = exc.reason
        self._reply(exc.status, exc.code, exc.message, list(exc.headers.items()), close=close)

    def _reply(
        self,
        status: int,
        code: str,
        message: str,
        headers: Headers | None = None,
        *,
        close: bool = False,
    ) -> None:
        close = close or not self._keep_alive or self._lane.closing
        if not self._request_id:
            self._request_id = new_request_id()  # refused before it was read
        self._write(
            error(
                status,
                code,
                message,
                [*(headers or ()), (REQUEST_ID, self._request_id)],
                head_only=self._method == "HEAD",
                close=close,
            )
        )
        if close:
            self._keep_alive = False
        self._done(status)

    def _done(self, status: int) -> None:
        lane = self._lane
        seconds = (time.perf_counter_ns() - self._begun) / 1e9
        if self._refusal is None and self._admission is not None:
            admission = self._admission  # the common case, without a tuple
            auth: str | None = admission.outcome
            reason = None
            user = admission.user_name or admission.claimed_user
            token_id = admission.token_id
        else:
            auth, reason, user, token_id = account(self._decided, self._admission, self._refusal)
        lane.access_log.record(
            self._client or self._peer,
            self._method,
            self._target,
            status,
            "fast",
            len(self._body),
            self._bytes_out,
            seconds,
            self._upstream_seconds,
            auth,
            reason,
            user,
            token_id,
            self._request_id,
        )
        lane.metrics.request(
            "fast", self._method, status, seconds, self._upstream_seconds, auth, reason
        )
        lane.served += 1
        self._upstream = None
        self.busy = False
        self._extra = ()
        self._by_token = False
        self._method, self._target = "GET", "/"
        if not self._keep_alive or self._lane.closing:
            self.close()
            return
        self._arm(self._lane.timeouts.keepalive)
        if self._read_paused and self.transport is not None:
            self._read_paused = False
            self.transport.resume_reading()
        if self._stash:
            data = bytes(self._stash)
            self._stash.clear()
            self._feed(data)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._bytes_out += len(data)
            self.transport.write(data)

    # -- the connection -----------------------------------------------------

    def _hand_off(self) -> None:
        """Give this connection, from the current request's first byte, to aiohttp."""
        transport = self.transport
        assert transport is not None
        self._lane.connections.discard(self)
        self._lane.handed_off += 1
        self._disarm()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        handler = self._fallback()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if self._pending:
            handler.data_received(b"".join(self._pending))
            self._pending.clear()
        if self._read_paused:
            transport.resume_reading()

    def _arm(self, seconds: float) -> None:
        # One lazy timer per connection: moving the deadline costs no timer
        # handle per request; the timer re-checks when it fires.
        self._deadline = self._loop.time() + seconds
        if self._timer is None:
            self._timer = self._loop.call_at(self._deadline, self._expire)

    def _disarm(self) -> None:
        self._deadline = None

    def _expire(self) -> None:
        self._timer = None
        if self._deadline is None or self.busy:
            return
        if self._loop.time() < self._deadline:
            self._timer = self._loop.call_at(self._deadline, self._expire)
            return
        if self._head_done and self._in_message:
            # The head is in, the body is not: say why the request is refused.
            self._refuse(too_slow(self._lane.timeouts), close=True)
            return
        log.debug("closing %s: no complete request head in time", self._peer)
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class FastSite(web.TCPSite):
    """A TCP site whose connections start in the fast lane."""

    def __init__(self, runner: web.BaseRunner, lane: FastLane, **kwargs: Any) -> None:
        super().__init__(runner, **kwargs)
        self._lane = lane

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        fallback = self._runner.server
        assert fallback is not None
        lane = self._lane
        self._server = await loop.create_server(
            lambda: FrontConnection(lane, fallback),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
