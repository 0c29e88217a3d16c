"""One exchange (a request and its answer) as both lanes record it, and the one call that does.

Like uvicorn's ``RequestResponseCycle`` or httpx's ``Request``/``Response``, an
``Exchange`` is what a lane knows of one request as it serves it: the client
it is for, its id, what the gate decided, its timings, its bytes, its outcome.
The fast lane's request cycle is one (``proxy/cycle.py``); the aiohttp lane
makes one per request (``exchange_of``) and finishes it in its access-log hook
(``proxy/handoff.py``). Either hands it to ``Recorder.finished``, which writes
the access-log line and counts the metrics, so that no lane can log one thing
and count another.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from aiohttp import web

from .requestid import HEADER as REQUEST_ID
from .requestid import request_id

if TYPE_CHECKING:
    from .accesslog import AccessLog
    from .metrics import Metrics


class Exchange:
    """One request and its answer; every field has its value before the fact is known.

    ``auth`` is token, password, session, anonymous, other or refused (then
    ``reason`` says why), None if the request never got that far;
    ``upstream_seconds`` (until the upstream's answer began) stays None when
    nothing was forwarded. ``begun`` is ``perf_counter_ns`` at the request's
    first byte or first sight: the event loop's clock has a millisecond's
    resolution under uvloop.
    """

    # Class defaults, not an __init__ that sets each: the fast lane makes one
    # exchange per request, and only what differs is written.
    lane = "aiohttp"
    request_id = ""
    begun = 0
    client = "unknown"
    method = "GET"
    target = "/"
    status = 0
    bytes_in = 0
    bytes_out = 0
    upstream_seconds: float | None = None
    auth: str | None = None
    reason: str | None = None
    user: str | None = None
    token_id: int | None = None

    def __init__(self, request_id: str, begun: int | None = None) -> None:
        self.request_id = request_id
        self.begun = time.perf_counter_ns() if begun is None else begun

    def authenticated(
        self, auth: str | None, reason: str | None, user: str | None, token_id: int | None
    ) -> None:
        self.auth, self.reason, self.user, self.token_id = auth, reason, user, token_id

    def answer_began(self, sent_at: int) -> None:
        """The upstream's answer began; the request went out at ``sent_at`` (ns)."""
        self.upstream_seconds = (time.perf_counter_ns() - sent_at) / 1e9


class Recorder:
    """Where finished exchanges go: the access log and the metrics, together."""

    def __init__(self, access_log: AccessLog, metrics: Metrics) -> None:
        self.access_log = access_log
        self.metrics = metrics

    def finished(self, exchange: Exchange) -> None:
        seconds = (time.perf_counter_ns() - exchange.begun) / 1e9
        self.access_log.record(exchange, seconds)
        self.metrics.request(
            exchange.lane,
            exchange.method,
            exchange.status,
            seconds,
            exchange.upstream_seconds,
            exchange.auth,
            exchange.reason,
        )


EXCHANGE: web.RequestKey[Exchange] = web.RequestKey("exchange", Exchange)


def exchange_of(request: web.BaseRequest) -> Exchange:
    """An aiohttp request's exchange, made on first use (the ``Expect`` handler runs
    before any middleware) with the request's id."""
    found = request.get(EXCHANGE)
    if found is None:
        found = Exchange(request_id(request.headers.getall(REQUEST_ID, [])))
        request[EXCHANGE] = found
    return found
