"""The aiohttp lane: what the fast lane hands on, served through aiohttp.

Requests that are not plain (chunked or large uploads, ``Expect``,
WebSockets, HTTP/1.0, pipelined or oddly spelt ones) and every request when
the fast lane is off come here. The request is admitted by ``gate.py``
(before ``100 Continue`` is sent, so a refused client never uploads its
body), its headers are rewritten by ``headers.py`` (strip first, then
inject), and it goes out through the same ``UpstreamPool`` as the fast lane:
same framing, same pool hygiene, same error translation. Bodies stream both
ways with backpressure, so a transfer of any size runs in bounded memory.

The upstream sees the path and query byte for byte (absolute-form targets
reduced to their path), the client's own ``Host``, and
``X-Forwarded-For/-Proto/-Host`` set by the proxy. Redirects are returned,
not followed; compressed bodies stay compressed. WebSockets are relayed
through aiohttp's client. After the response has started, a failure can only
cut the connection, which tells the client the body is incomplete.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from aiohttp.http import HttpVersion11
from multidict import CIMultiDict
from yarl import URL

from ..auth.gate import Admission, Decision, Gate, account
from ..config import Config
from ..errors import PayloadTooLarge, ProxyError, closing, error_response
from ..live import Live
from ..networks import Networks
from ..ops.accesslog import loggable_path
from ..ops.exchange import exchange_of
from .client import ClientView, client_of
from .framing import FRAMING, LAST_CHUNK, Body, chunk, origin_form, request_head
from .headers import Headers, Injection, for_client, list_items, normalise
from .heads import refusal
from .pacing import PacedBody
from .pool import UpstreamPool
from .responder import Responder, answer_head
from .upstream import translate
from .websocket import relay

log = logging.getLogger(__name__)

_ADMISSION: web.RequestKey[Admission] = web.RequestKey("admission", Admission)
# The admission's own response headers, added after the upstream's are filtered.
ExtraHeaders = tuple[tuple[str, str], ...]
_CHUNK = 64 * 1024
# Bodies up to this size with a declared length are relayed in one piece.
_SMALL_BODY = 256 * 1024

# Headers aiohttp's client would invent if absent; the proxy sends only what the client sent.
SKIP_AUTO_HEADERS = frozenset({"Accept", "Accept-Encoding", "User-Agent", "Content-Type"})

# Renegotiated by aiohttp's WebSocket client on the upstream leg.
_WS_HANDSHAKE = frozenset(
    {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
     "sec-websocket-protocol"}
)  # fmt: skip


class Forwarder:
    def __init__(
        self,
        pool: UpstreamPool,
        websockets: aiohttp.ClientSession,
        gate: Gate,
        injection: Injection,
        config: Config,
        live: Live,
    ) -> None:
        self._live = live
        self._pool = pool
        self._websockets = websockets
        self._gate = gate
        self._injection = injection
        parts = urlsplit(config.upstream.url)
        self._ws_origin = ("wss" if parts.scheme == "https" else "ws") + f"://{parts.netloc}"
        self._max_body = config.proxy.max_request_body_mb * 1024 * 1024

    @property
    def trusted(self) -> Networks:
        return self._live.now.trusted

    async def expect(self, request: web.Request) -> web.StreamResponse | None:
        """Answer ``Expect: 100-continue`` only once the request is admitted.

        aiohttp asks this before any middleware: the request's exchange learns its
        client here. A refusal ends the connection, said out loud: the client may
        or may not send the body it held back, so nothing after it can be read
        as a request (RFC 9110 §10.1.1).
        """
        view = client_of(request, self.trusted)
        exchange_of(request).client = view.address
        try:
            request[_ADMISSION] = await self._admit(request, view)
        except ProxyError as exc:
            return closing(exc.to_response())
        if request.version != HttpVersion11 or request.headers["Expect"].lower() != "100-continue":
            return closing(
                error_response(417, "expectation_failed", "only Expect: 100-continue is supported")
            )
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        target = _target(request)
        view = client_of(request, self.trusted)
        admission = request.get(_ADMISSION)
        if admission is None:
            admission = await self._admit(request, view)
        headers = self._headers(request, view, admission)
        if _is_websocket(request):
            return await self._websocket(request, target, headers, admission.response_headers)
        return await self._http(request, target, headers, admission, view.address)

    async def _admit(self, request: web.Request, view: ClientView) -> Admission:
        """Admit the request, then refuse a declared body over the limit (before any upload)."""
        admission = await admit(self._gate, request, view.address)
        length = request.content_length
        if self._max_body and length is not None and length > self._max_body:
            raise _too_large(self._max_body)
        return admission

    def _headers(self, request: web.Request, view: ClientView, admission: Admission) -> Headers:
        raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]
        return self._injection.rewrite(
            raw,
            view,
            user_name=admission.user_name,
            strip_authorization=admission.strip_authorization,
            request_id=exchange_of(request).request_id,
        )

    async def _http(
        self,
        request: web.Request,
        target: str,
        headers: Headers,
        admission: Admission,
        client: str,
    ) -> web.StreamResponse:
        method = request.method
        responder = Responder(request.transport)
        record = exchange_of(request)
        length = request.content_length if request.body_exists else 0
        body = PacedBody(request.content, self._live.now.client)
        try:
            # A body is read before an upstream connection is taken, up to
            # _SMALL_BODY, so a client that starts an upload and stalls holds
            # none of the pool (as nginx buffers request bodies).
            start = await body.read_up_to(_SMALL_BODY) if length != 0 else b""
            if length is None and len(start) <= _SMALL_BODY and body.at_eof():
                length = len(start)  # a small chunked body goes out with its length
            if length is not None and length <= _SMALL_BODY:
                data = request_head(method, target, headers, length) + start
                self._pool.send(responder, method, data, client)
            else:
                await self._stream(request, target, headers, length, responder, body, start)
            sent_at = time.perf_counter_ns()
            try:
                status, upstream_headers, framing, declared = await answer_head(request, responder)
            finally:
                record.answer_began(sent_at)
        except BaseException:
            responder.abandon()
            raise
        try:
            return await self._relay(
                request, responder, status, upstream_headers, framing, declared, admission
            )
        finally:
            responder.abandon()

    async def _stream(
        self,
        request: web.Request,
        target: str,
        headers: Headers,
        length: int | None,
        responder: Responder,
        body: PacedBody,
        start: bytes,
    ) -> None:
        """Send a large request body as it arrives (``start`` already read), never more
        than the limit, holding an upstream connection for the client's address."""
        if self._max_body and length is not None and length > self._max_body:
            raise _too_large(self._max_body)
        view = client_of(request, self.trusted)
        conn = await self._pool.acquire(view.address)
        conn.begin(responder, request.method, request_head(request.method, target, headers, length))
        seen = 0
        data = start
        try:
            while data:
                seen += len(data)
                if self._max_body and seen > self._max_body:
                    raise _too_large(self._max_body)
                conn.write(data if length is not None else chunk(data))
                try:
                    await conn.drain()
                except ConnectionResetError:
                    return  # the upstream is gone: the responder has its error
                # Raises if the client is gone (ConnectionResetError) or too slow
                # (RequestTimeout); either way the upstream connection goes with it.
                data = await body.next()
            if length is None:
                conn.write(LAST_CHUNK)
        except BaseException:
            responder.abandon()
            raise

    async def _relay(
        self,
        request: web.Request,
        responder: Responder,
        status: int,
        upstream_headers: Headers,
        framing: Body,
        declared: int | None,
        admission: Admission,
    ) -> web.StreamResponse:
        headers = CIMultiDict(
            (k, v)
            for k, v in for_client(upstream_headers, token=admission.token)
            if k.lower() not in FRAMING
        )
        headers.extend(admission.response_headers)
        if framing is Body.LENGTH and declared is not None and declared <= _SMALL_BODY:
            # Most REST answers are small: read whole and answer with one write.
            small = web.Response(status=status, headers=headers)
            small.body = await responder.read_all()
            return small
        response = web.StreamResponse(status=status, headers=headers)
        if declared is not None and framing in (Body.LENGTH, Body.NONE) and status != 304:
            response.content_length = declared
        await response.prepare(request)
        try:
            async for data in responder.chunks():
                await response.write(data)
            await response.write_eof()
        except ProxyError as exc:
            # The status line is gone already; cutting the connection is the
            # only way left to tell the client the body is incomplete.
            path = loggable_path(request.raw_path)
            log.warning("%s %s: %s; connection closed", request.method, path, exc.message)
            if request.transport is not None:
                request.transport.close()
        except ConnectionResetError:
            pass  # the client went away; the responder stops the upstream
        return response

    async def _websocket(
        self, request: web.Request, target: str, headers: Headers, extra: ExtraHeaders
    ) -> web.StreamResponse:
        forward = [(k, v) for k, v in headers if normalise(k) not in _WS_HANDSHAKE]
        protocols = list_items(request.headers.getall("Sec-WebSocket-Protocol", []))
        try:
            upstream_ws = await self._websockets.ws_connect(
                URL(self._ws_origin + target, encoded=True),
                headers=forward,
                protocols=protocols,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10.0),
                max_msg_size=0,
            )
        except aiohttp.WSServerHandshakeError as exc:
            # The upstream refused the upgrade (401, 403, 404...): say so plainly.
            return error_response(
                exc.status if exc.status >= 400 else 502,
                "upstream_refused_websocket",
                f"the upstream refused the WebSocket upgrade with HTTP {exc.status}",
            )
        except Exception as exc:
            raise translate(exc) from exc
        client_ws = web.WebSocketResponse(
            protocols=(upstream_ws.protocol,) if upstream_ws.protocol else (), max_msg_size=0
        )
        # Only the proxy's own headers: none of the upstream's handshake answer
        # (so no Set-Cookie) reaches the client.
        client_ws.headers.extend(extra)
        try:
            await client_ws.prepare(request)
            await relay(client_ws, upstream_ws)
        finally:
            await upstream_ws.close()
        return client_ws


async def admit(
    gate: Gate,
    request: web.Request,
    client: str,
    method: str | None = None,
    target: str | None = None,
) -> Admission:
    """The gate's answer for an aiohttp request, noted for its access-log line.

    ``method`` and ``target`` (where a password may ride in the query) are
    the request's own unless the caller knows better (forward auth's
    ``X-Forwarded-Method`` and ``X-Forwarded-Uri``)."""
    record = exchange_of(request)
    decision: Decision | None = None
    try:
        decision = gate.decide(request.headers.getall("Authorization", []))
        admission = await gate.admit(
            decision,
            method or request.method,
            client,
            upgrade="Upgrade" in request.headers,
            target=request.raw_path if target is None else target,
        )
    except ProxyError as exc:
        if exc.reason is not None:
            record.authenticated(*account(decision, None, exc.reason))
        raise
    record.authenticated(*account(decision, admission, None))
    return admission


def _target(request: web.Request) -> str:
    """The request-target to send upstream; its head must pass ``heads.refusal`` as a
    request to forward (``app.errors_middleware`` asked it of every request)."""
    hosts = len(request.headers.getall("Host", ()))
    refused = refusal(f"{request.version.major}.{request.version.minor}", hosts, forwarded=True)
    if refused is not None:
        raise refused
    return origin_form(request.method, request.raw_path.encode("utf-8", "surrogateescape"))


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is larger than {limit} bytes")


def _is_websocket(request: web.Request) -> bool:
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return False
    return "upgrade" in {t.lower() for t in list_items(request.headers.getall("Connection", []))}
