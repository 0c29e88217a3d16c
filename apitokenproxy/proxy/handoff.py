"""The aiohttp lane's connections, built through aiohttp's public hooks only.

What the fast lane hands on (``fastlane.py``), and every connection when it is
off, is served by aiohttp's ``RequestHandler``, made here (``HandOff``) with
the options the runner was given and the live client timeouts, so that a
reload reaches every connection opened after it. ``LaneConnection`` adds
what a gateway needs and aiohttp has no option for:

- A connection that has not sent a complete request head within the header
  timeout is closed (slow-loris). The application's middleware says when a
  head is in (``request_began``); between requests, aiohttp's keep-alive
  timeout does the same.
- Requests that do not parse as HTTP (smuggling attempts, oversized or
  folded headers) get the proxy's JSON error, and one log line without a
  traceback, so a flood of garbage cannot fill the log with stacks.
- ``closed`` is done when the client goes, so the forwarder stops waiting
  for the upstream; ``in_flight`` counts the requests being handled, which a
  clean stop lets finish before aiohttp's own shutdown closes connections.

``recording`` is the ``access_log_class`` hook: it finishes each request's
exchange (``ops/exchange.py``) as the fast lane finishes its own.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_protocol import RequestHandler

from ..errors import closing, error_response
from ..live import ClientTimeouts, Live
from ..ops.exchange import EXCHANGE, Exchange, Recorder
from ..ops.requestid import HEADER as REQUEST_ID
from ..ops.requestid import new_request_id
from .framing import MALFORMED
from .inflight import InFlight

log = logging.getLogger("apitokenproxy")

# Set once a response's head is written (the application's on_response_prepare
# signal): an error after that can only cut the connection.
ANSWERING: web.RequestKey[bool] = web.RequestKey("answering", bool)


class LaneConnection(RequestHandler):
    """aiohttp's connection handler, with the header deadline, the JSON errors of
    unparsable requests, and the watch a gateway needs (see the module's docstring)."""

    def __init__(
        self, manager: web.Server, *, timeouts: ClientTimeouts, in_flight: InFlight, **options: Any
    ) -> None:
        super().__init__(manager, keepalive_timeout=timeouts.keepalive, **options)
        self._header_timeout = timeouts.header
        self._in_flight = in_flight
        self._heard = False
        self._head_deadline: asyncio.TimerHandle | None = None
        # Done when the client goes: the forwarder stops waiting for the upstream.
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._head_deadline = asyncio.get_running_loop().call_later(
            self._header_timeout, self._drop_if_silent
        )

    def request_began(self) -> None:
        """A request head is in and its handling begins (``app.errors_middleware``)."""
        self._heard = True
        self._in_flight.enter()
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def request_ended(self) -> None:
        self._in_flight.leave()

    def _drop_if_silent(self) -> None:
        self._head_deadline = None
        if not self._heard and self.transport is not None:
            peer = self.transport.get_extra_info("peername")
            log.info("closing %s: no request head in %s s", peer, self._header_timeout)
            self.transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
        super().connection_lost(exc)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.get(ANSWERING):
            raise ConnectionError("response already started; cannot send an error")
        if status >= 500:
            self.log_exception("error handling request from %s", request.remote, exc_info=exc)
            response = error_response(status, "internal_error", "internal error")
        else:
            # The parser's message quotes the offending bytes, which may be a
            # token or a password: neither the answer nor the log repeats it.
            log.info("refused malformed request from %s: %s", request.remote, type(exc).__name__)
            response = error_response(status, "malformed_request", MALFORMED)
        # A request that did not parse has no headers to decide its client from.
        exchange = request.get(EXCHANGE)
        if exchange is None:
            exchange = request[EXCHANGE] = Exchange(new_request_id())
            exchange.client = request.remote or "unknown"
        response.headers[REQUEST_ID] = exchange.request_id
        return closing(response)


class HandOff:
    """Makes the aiohttp lane's connections: a factory for ``loop.create_server`` and
    for the fast lane's hand-off. ``options`` are aiohttp's handler options."""

    def __init__(self, server: web.Server, live: Live, **options: Any) -> None:
        self._server = server
        self._live = live  # read for each new connection: a reload reaches the next one
        self._options = options
        self.in_flight = InFlight()

    def __call__(self) -> LaneConnection:
        return LaneConnection(
            self._server,
            timeouts=self._live.now.client,
            in_flight=self.in_flight,
            loop=asyncio.get_running_loop(),
            **self._options,
        )


def recording(recorder: Recorder) -> type[AbstractAccessLogger]:
    """aiohttp's access-log hook: finish each request's exchange as the fast lane does."""

    class ExchangeLog(AbstractAccessLogger):
        def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
            exchange = request.get(EXCHANGE)
            if exchange is None:
                # Answered before any handler saw it: begun when aiohttp began it.
                exchange = Exchange(new_request_id())
                exchange.begun -= int(time * 1e9)
                exchange.client = request.remote or "unknown"
            exchange.method = request.method
            exchange.target = request.raw_path
            exchange.status = response.status
            exchange.bytes_in = request.content.total_bytes
            exchange.bytes_out = response.body_length
            recorder.finished(exchange)

    return ExchangeLog
