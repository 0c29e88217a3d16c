"""Forwarding to Jira/Confluence: streaming, header-exact, WebSocket-aware.

Every path that is not the token API or the health prefix comes here. The
request is admitted by ``gate.py`` (before ``100 Continue`` is sent, so a
refused client never uploads its body), its headers are rewritten by
``headers.py`` (strip first, then inject), and bodies stream both ways with
backpressure: a chunk is read only when the previous one was written, so a
transfer of any size runs in bounded memory.

The upstream sees the raw path and query byte for byte, the client's own
``Host``, and ``X-Forwarded-For/-Proto/-Host`` set by the proxy. Redirects are
returned, not followed; compressed bodies stay compressed.

aiohttp client errors are translated here: refused, reset or garbage → 502,
too slow → 504. After the response has started, a failure can only cut the
connection, which tells the client the body is incomplete.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
from aiohttp import WSMsgType, web
from aiohttp.http import HttpVersion11
from multidict import CIMultiDict
from yarl import URL

from .config import Config
from .errors import (
    PayloadTooLarge,
    ProxyError,
    UpstreamTimeout,
    UpstreamUnavailable,
    error_response,
)
from .forwarding import ClientView, client_of
from .gate import Admission, Gate
from .headers import Headers, Injection, for_client, normalise

log = logging.getLogger(__name__)

_ADMISSION: web.RequestKey[Admission] = web.RequestKey("admission", Admission)
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
    def __init__(self, session: aiohttp.ClientSession, gate: Gate, config: Config) -> None:
        self._session = session
        self._gate = gate
        parts = urlsplit(config.upstream.url)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._ws_origin = ("wss" if parts.scheme == "https" else "ws") + f"://{parts.netloc}"
        upstream = config.upstream
        self._injection = Injection.from_config(upstream)
        self._max_body = config.proxy.max_request_body_mb * 1024 * 1024
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=upstream.connect_timeout_seconds,
            sock_connect=upstream.connect_timeout_seconds,
            sock_read=upstream.read_timeout_seconds,
        )

    async def expect(self, request: web.Request) -> web.StreamResponse | None:
        """Answer ``Expect: 100-continue`` only once the request is admitted."""
        try:
            request[_ADMISSION] = await self._admit(request, client_of(request))
        except ProxyError as exc:
            return exc.to_response()
        if request.version != HttpVersion11 or request.headers["Expect"].lower() != "100-continue":
            return error_response(
                417, "expectation_failed", "only Expect: 100-continue is supported"
            )
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        view = client_of(request)
        admission = request.get(_ADMISSION)
        if admission is None:
            admission = await self._admit(request, view)
        headers = self._headers(request, view, admission)
        if _is_websocket(request):
            return await self._websocket(request, headers)
        return await self._http(request, headers)

    async def _admit(self, request: web.Request, view: ClientView) -> Admission:
        """Admit the request, then refuse a declared body over the limit (before any upload)."""
        admission = await self._gate.admit(
            request.headers.getall("Authorization", []), view.address
        )
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
        )

    async def _http(self, request: web.Request, headers: Headers) -> web.StreamResponse:
        body = _LimitedBody(request.content, self._max_body) if request.body_exists else None
        try:
            upstream = await self._session.request(
                request.method,
                URL(self._origin + request.raw_path, encoded=True),
                headers=headers,
                data=body,
                allow_redirects=False,
                timeout=self._timeout,
            )
        except Exception as exc:
            if body is not None and body.exceeded:
                # aiohttp reports the aborted upload as a connection error.
                raise body.error() from exc
            raise _translate(exc) from exc
        try:
            return await self._relay(request, upstream)
        finally:
            upstream.release()

    async def _relay(
        self, request: web.Request, upstream: aiohttp.ClientResponse
    ) -> web.StreamResponse:
        raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in upstream.raw_headers]
        headers = CIMultiDict(for_client(raw))
        length = upstream.content_length
        if (
            length is not None
            and length <= _SMALL_BODY
            and request.method != "HEAD"
            and upstream.status not in (204, 304)
        ):
            # Most REST answers are small: read whole (bounded by _SMALL_BODY) and
            # answer with one write instead of a stream of them.
            try:
                body = await upstream.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _translate(exc) from exc
            small = web.Response(status=upstream.status, reason=upstream.reason, headers=headers)
            small.body = body
            return small
        response = web.StreamResponse(
            status=upstream.status, reason=upstream.reason, headers=headers
        )
        await response.prepare(request)
        try:
            async for chunk in upstream.content.iter_chunked(_CHUNK):
                await response.write(chunk)
            await response.write_eof()
        except (aiohttp.ClientError, TimeoutError) as exc:
            # The status line is gone already; cutting the connection is the
            # only way left to tell the client the body is incomplete.
            log.warning(
                "%s %s: upstream failed mid-response (%s); connection closed",
                request.method,
                request.path,
                type(exc).__name__,
            )
            upstream.close()
            if request.transport is not None:
                request.transport.close()
        except ConnectionResetError:
            upstream.close()  # the client went away; stop reading from the upstream
        return response

    async def _websocket(self, request: web.Request, headers: Headers) -> web.StreamResponse:
        forward = [(k, v) for k, v in headers if normalise(k) not in _WS_HANDSHAKE]
        protocols = [
            p.strip()
            for value in request.headers.getall("Sec-WebSocket-Protocol", [])
            for p in value.split(",")
            if p.strip()
        ]
        try:
            upstream_ws = await self._session.ws_connect(
                URL(self._ws_origin + request.raw_path, encoded=True),
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
            raise _translate(exc) from exc
        client_ws = web.WebSocketResponse(
            protocols=(upstream_ws.protocol,) if upstream_ws.protocol else (), max_msg_size=0
        )
        try:
            await client_ws.prepare(request)
            await _relay_websocket(client_ws, upstream_ws)
        finally:
            await upstream_ws.close()
        return client_ws


async def _relay_websocket(
    client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse
) -> None:
    async def pump(
        source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
        target: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    ) -> None:
        async for message in source:
            if message.type == WSMsgType.TEXT:
                await target.send_str(message.data)
            elif message.type == WSMsgType.BINARY:
                await target.send_bytes(message.data)
            elif message.type == WSMsgType.ERROR:
                break
        # The source closed: pass its close code on.
        await target.close(code=source.close_code or 1000)

    tasks = [
        asyncio.create_task(pump(client, upstream)),
        asyncio.create_task(pump(upstream, client)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, aiohttp.ClientError):
                await task


class _LimitedBody:
    """The request body as a stream, cut off past ``limit`` bytes (0: no limit)."""

    def __init__(self, content: aiohttp.StreamReader, limit: int) -> None:
        self._content = content
        self._limit = limit
        self.exceeded = False

    def error(self) -> PayloadTooLarge:
        return _too_large(self._limit)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._content.iter_chunked(_CHUNK):
            seen += len(chunk)
            if self._limit and seen > self._limit:
                self.exceeded = True
                raise self.error()
            yield chunk


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is larger than {limit} bytes")


def _is_websocket(request: web.Request) -> bool:
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return False
    tokens = {
        t.strip().lower() for v in request.headers.getall("Connection", []) for t in v.split(",")
    }
    return "upgrade" in tokens


def _translate(exc: Exception) -> ProxyError:
    """Map an aiohttp client failure to the error the client gets (logged by the middleware)."""
    if isinstance(exc, TimeoutError):
        error: ProxyError = UpstreamTimeout("the upstream did not answer in time")
    elif isinstance(exc, aiohttp.ClientConnectorError):
        error = UpstreamUnavailable("the upstream refused the connection or cannot be reached")
    elif isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        error = UpstreamUnavailable("the upstream closed the connection without answering")
    elif isinstance(exc, aiohttp.ClientError):
        error = UpstreamUnavailable(
            f"the upstream answered with invalid HTTP ({type(exc).__name__})"
        )
    else:
        raise exc
    return error
