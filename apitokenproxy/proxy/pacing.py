"""How slowly a client may send a request body: one rule for both lanes.

A body must keep coming: no more than ``listen.body_timeout_seconds`` between
two reads, and, once that long has passed since it began, at least
``listen.body_min_rate`` bytes a second on average (nginx's
``client_body_timeout`` and Apache's ``RequestReadTimeout ... MinRate``
together). A client that trickles a large upload a byte at a time would
otherwise hold a worker's resources, and once its body streams, an upstream
connection, for as long as it likes. ``body_deadline`` is the pure rule; the
fast lane applies it in its connection timer, ``paced`` to aiohttp's stream.
"""

from __future__ import annotations

import asyncio

import aiohttp

from ..errors import RequestTimeout
from ..live import ClientTimeouts

TOO_SLOW = "the request body arrived too slowly"


def body_deadline(
    started: float, last: float, received: int, *, idle: float, min_rate: float
) -> float:
    """When a body that began at ``started``, last gave bytes at ``last`` and has
    ``received`` of them so far, becomes too slow (times in seconds, any clock)."""
    deadline = last + idle
    if min_rate > 0:
        deadline = min(deadline, started + max(idle, received / min_rate))
    return deadline


def too_slow(timeouts: ClientTimeouts) -> RequestTimeout:
    rate = f" or under {timeouts.body_min_rate} bytes a second" if timeouts.body_min_rate else ""
    return RequestTimeout(f"{TOO_SLOW} (silent for {timeouts.body:g} s{rate})")


class PacedBody:
    """A request body read from aiohttp's stream under ``body_deadline``: each read
    raises RequestTimeout once the body is too slow, counted from its first read."""

    def __init__(self, content: aiohttp.StreamReader, timeouts: ClientTimeouts) -> None:
        self._content = content
        self._timeouts = timeouts
        self._loop = asyncio.get_running_loop()
        self._started: float | None = None
        self._last = 0.0
        self.received = 0

    def at_eof(self) -> bool:
        return self._content.at_eof()

    async def next(self) -> bytes:
        """The next bytes of the body; b"" at its end."""
        timeouts = self._timeouts
        if self._started is None:
            self._started = self._last = self._loop.time()
        deadline = body_deadline(
            self._started,
            self._last,
            self.received,
            idle=timeouts.body,
            min_rate=timeouts.body_min_rate,
        )
        try:
            async with asyncio.timeout_at(deadline):
                data = await self._content.readany()
        except TimeoutError as exc:
            raise too_slow(timeouts) from exc
        self.received += len(data)
        self._last = self._loop.time()
        return data

    async def read_up_to(self, limit: int) -> bytes:
        """The body's first bytes: all of it if it ends within ``limit``, else a little more."""
        parts: list[bytes] = []
        size = 0
        while size <= limit:
            data = await self.next()
            if not data:
                break
            parts.append(data)
            size += len(data)
        return b"".join(parts)
