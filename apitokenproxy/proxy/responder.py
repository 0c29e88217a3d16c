"""An upstream answer handed from the pool's callbacks to the aiohttp lane's coroutines.

``Responder`` is the ``ResponseSink`` (``upstream.py``) of the aiohttp lane: it
buffers what the upstream sends, up to a high-water mark before the upstream
connection is paused, and ``forwarder.py`` reads it with ``chunks`` or
``read_all``. ``answer_head`` waits for the answer's head, unless the client
goes first.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from aiohttp import web

from ..errors import ClientTooSlow, ProxyError
from .framing import Body, Headers
from .upstream import UpstreamConnection

# Response bytes buffered for a slow client before the upstream is paused.
_HIGH_WATER = 256 * 1024


class Responder:
    """Receives an upstream response in callbacks and hands it to a coroutine.

    ``client`` is the client's transport, cut when the client stopped reading
    (``ClientTooSlow``), even while the relay waits to write to it."""

    def __init__(self, client: asyncio.Transport | None) -> None:
        self._client = client
        loop = asyncio.get_running_loop()
        self.head: asyncio.Future[tuple[int, Headers, Body, int | None]] = loop.create_future()
        self._loop = loop
        self._upstream: UpstreamConnection | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._ended = False
        self._error: ProxyError | None = None
        self._waiter: asyncio.Future[None] | None = None

    def attached(self, upstream: UpstreamConnection) -> None:
        self._upstream = upstream

    def response_head(self, status: int, headers: Headers, body: Body, length: int | None) -> None:
        if not self.head.done():
            self.head.set_result((status, headers, body, length))

    def response_body(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _HIGH_WATER and self._upstream is not None:
            self._upstream.pause_reading()
        self._wake()

    def response_flush(self) -> None:
        pass  # chunks are woken one by one; aiohttp's writer does its own buffering

    def response_end(self) -> None:
        self._ended = True
        self._upstream = None
        self._wake()

    def response_failed(self, error: ProxyError, *, started: bool) -> None:
        self._upstream = None
        if not self.head.done():
            self.head.set_exception(error)
        self._error = error
        if isinstance(error, ClientTooSlow) and self._client is not None:
            # The relay may be waiting for a write to a client that reads nothing:
            # cut it, as the pool cut the upstream connection it held.
            self._client.abort()
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            if self._chunks:
                data = self._chunks.popleft()
                self._buffered -= len(data)
                if self._buffered < _HIGH_WATER // 4 and self._upstream is not None:
                    self._upstream.resume_reading()
                yield data
            elif self._error is not None:
                raise self._error
            elif self._ended:
                return
            else:
                self._waiter = self._loop.create_future()
                await self._waiter

    async def read_all(self) -> bytes:
        return b"".join([data async for data in self.chunks()])

    def abandon(self) -> None:
        """Stop the upstream exchange unless it finished."""
        if not self.head.done():
            self.head.cancel()
        upstream, self._upstream = self._upstream, None
        if upstream is not None and not self._ended:
            upstream.abandon()


@runtime_checkable
class WatchedConnection(Protocol):
    """A connection handler that says when its client has gone (handoff.LaneConnection)."""

    closed: asyncio.Future[None]


async def answer_head(
    request: web.Request, responder: Responder
) -> tuple[int, Headers, Body, int | None]:
    """The upstream's answer head, unless the client goes away first (ConnectionResetError):
    a client that hangs up must not hold an upstream connection until the upstream answers."""
    protocol = request.protocol
    if responder.head.done() or not isinstance(protocol, WatchedConnection):
        return await responder.head
    await asyncio.wait((responder.head, protocol.closed), return_when=asyncio.FIRST_COMPLETED)
    if not responder.head.done():
        raise ConnectionResetError("the client went away before the upstream answered")
    return responder.head.result()
