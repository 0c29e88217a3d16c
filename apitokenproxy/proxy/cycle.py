"""One request of the fast lane, from its parsed head to its answer's last byte.

As uvicorn's ``RequestResponseCycle``: ``fastlane.FrontConnection`` parses a
request and makes a ``Cycle`` of it; the cycle is admitted by ``auth/gate.py``
(in callbacks while the token is cached, in a task otherwise), its headers
are rewritten by ``headers.Injection`` (strip first, then inject), it is
framed by ``framing`` and sent through the shared ``pool.UpstreamPool``, and
it receives the answer as the pool's ``ResponseSink``, writing it to the
client. A cycle is the exchange record too (``ops/exchange.py``): when it
ends it goes to the access log and the metrics in one call, then hands the
connection back for the next request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from ..auth.gate import Admission, Decision, account
from ..errors import ProxyError
from ..ops.accesslog import loggable_path
from ..ops.exchange import Exchange
from ..ops.requestid import HEADER as REQUEST_ID
from ..ops.requestid import new_request_id
from .client import ClientView
from .framing import CHUNKED, LAST_CHUNK, UNTIL_CLOSE, Body, Headers, chunk, error, request_head
from .framing import response_head as frame_response_head
from .headers import for_client
from .upstream import UpstreamConnection

if TYPE_CHECKING:
    from .fastlane import FrontConnection

log = logging.getLogger(__name__)


class Cycle(Exchange):
    """One fast-lane request and its answer (a ``ResponseSink`` of ``pool.py``)."""

    lane = "fast"
    # Until known: most requests never need them set.
    _upstream: UpstreamConnection | None = None
    _admitting: asyncio.Task[None] | None = None
    _decided: Decision | None = None
    _admission: Admission | None = None
    _refusal: str | None = None
    _chunked = False
    _by_token = False  # the answer then keeps no Set-Cookie (headers.for_client)
    # Headers the admission adds to the answer (the token's expiry).
    _extra: tuple[tuple[str, str], ...] = ()
    _sent_at = 0

    def __init__(
        self,
        conn: FrontConnection,
        begun: int,
        method: str,
        target: str,
        headers: Headers,
        body: bytes,
        keep_alive: bool,
    ) -> None:
        self.begun = begun
        self.method = method
        self.target = target
        self.keep_alive = keep_alive
        self.bytes_in = len(body)
        self._conn = conn
        self._headers = headers
        self._body = body
        self._out: list[bytes] = []

    def serve(self, view: ClientView, request_id: str, decision: Decision) -> None:
        """Admit, rewrite and send the request the gate read as ``decision``."""
        self.client = view.address
        self.request_id = request_id
        self._decided = decision
        try:
            admission = self._conn.lane.gate.admit_now(
                decision, self.method, view.address, target=self.target
            )
        except ProxyError as exc:
            self.refuse(exc)
            return
        if admission is None:
            self._admitting = asyncio.get_running_loop().create_task(
                self._admit_later(decision, view)
            )
            return
        self._forward(admission, view)

    async def _admit_later(self, decision: Decision, view: ClientView) -> None:
        try:
            admission = await self._conn.lane.gate.admit(
                decision, self.method, view.address, target=self.target
            )
        except ProxyError as exc:
            self.refuse(exc)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "unexpected error admitting %s %s", self.method, loggable_path(self.target)
            )
            self.reply(500, "internal_error", "internal error; see the proxy's log", close=True)
            return
        finally:
            self._admitting = None
        if self._conn.open:
            self._forward(admission, view)

    def _forward(self, admission: Admission, view: ClientView) -> None:
        self._admission = admission
        lane = self._conn.lane
        try:
            outgoing = lane.injection.rewrite(
                self._headers,
                view,
                user_name=admission.user_name,
                strip_authorization=admission.strip_authorization,
                request_id=self.request_id,
            )
        except ProxyError as exc:
            self.refuse(exc)
            return
        body = self._body
        data = request_head(self.method, self.target, outgoing, len(body)) + body
        self._extra = admission.response_headers
        self._by_token = admission.token
        self._sent_at = time.perf_counter_ns()
        lane.pool.send(self, self.method, data, self.client)

    # -- the upstream's answer (ResponseSink) ----------------------------------

    def attached(self, upstream: UpstreamConnection) -> None:
        self._upstream = upstream

    def response_head(self, status: int, headers: Headers, body: Body, length: int | None) -> None:
        close = not self.keep_alive or self._conn.lane.closing
        # Exchange.answer_began, inline: this runs for every request of the fast lane.
        self.upstream_seconds = (time.perf_counter_ns() - self._sent_at) / 1e9
        out = for_client(headers, self.request_id, token=self._by_token)
        if self._extra:
            out += self._extra
        self.status = status
        self._chunked = body is CHUNKED or body is UNTIL_CLOSE
        # Held until the upstream's read is handled: head and body then leave
        # in one send, not two.
        self._out.append(frame_response_head(status, out, body, length, close=close))

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
        self._done(self.status)

    def response_failed(self, error: ProxyError, *, started: bool) -> None:
        if started:
            # The head is the client's (as in the aiohttp lane); cutting the
            # connection is the only way left to say the body is incomplete.
            self.response_flush()
            self._upstream = None
            self._conn.abort()
            return
        self.answer_began(self._sent_at)
        self.refuse(error)

    # -- answering ------------------------------------------------------------

    def refuse(self, exc: ProxyError, *, close: bool = False) -> None:
        if exc.status >= 500:
            path = loggable_path(self.target)  # no query, no token: as in the access log
            log.warning("%s %s -> %d: %s", self.method, path, exc.status, exc.message)
        self._refusal = exc.reason
        self.reply(exc.status, exc.code, exc.message, list(exc.headers.items()), close=close)

    def reply(
        self,
        status: int,
        code: str,
        message: str,
        headers: Headers | None = None,
        *,
        close: bool = False,
    ) -> None:
        close = close or not self.keep_alive or self._conn.lane.closing
        if not self.request_id:
            self.request_id = new_request_id()  # refused before it was read
        self._write(
            error(
                status,
                code,
                message,
                [*(headers or ()), (REQUEST_ID, self.request_id)],
                head_only=self.method == "HEAD",
                close=close,
            )
        )
        if close:
            self.keep_alive = False
        self._done(status)

    def _done(self, status: int) -> None:
        self.status = status
        admission = self._admission
        if self._refusal is None and admission is not None:
            # The common case, without account()'s tuple.
            self.auth = admission.outcome
            self.user = admission.user_name or admission.claimed_user
            self.token_id = admission.token_id
        else:
            self.authenticated(*account(self._decided, admission, self._refusal))
        self._upstream = None
        conn = self._conn
        conn.lane.recorder.finished(self)
        conn.cycle_done(self)

    def _write(self, data: bytes) -> None:
        transport = self._conn.transport
        if transport is not None and not transport.is_closing():
            self.bytes_out += len(data)
            transport.write(data)

    # -- the client connection -------------------------------------------------

    def pause_upstream(self) -> None:
        if self._upstream is not None:
            self._upstream.pause_reading()

    def resume_upstream(self) -> None:
        if self._upstream is not None:
            self._upstream.resume_reading()

    def abandon(self) -> None:
        """The client is gone: stop the upstream exchange and the admission."""
        upstream, self._upstream = self._upstream, None
        if upstream is not None:
            upstream.abandon()
        if self._admitting is not None:
            self._admitting.cancel()
