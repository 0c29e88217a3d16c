"""How slowly a client may send a request body: one rule for both lanes.

A body must keep coming. It starts with ``listen.body_timeout_seconds`` in
hand; every byte that arrives buys ``1 / listen.body_min_rate`` seconds more,
but the client never holds more than ``body_timeout_seconds`` ahead of the
clock. So a body silent for that long is too slow, and so is one that comes
slower than ``body_min_rate`` bytes a second for long (a client at 80% of the
rate lasts five times the timeout), while a fast start buys no licence to
trickle afterwards: an upload that sends 300 KiB at once and then a byte every
five seconds is cut ``body_timeout_seconds`` after the burst. (nginx's
``client_body_timeout`` is the silence alone; Apache's ``RequestReadTimeout
... MinRate`` grows its deadline with the bytes, up to a cap.) A client that
trickles a large upload would otherwise hold a worker's resources, and once its
body streams an upstream connection, for as long as it likes.

``body_deadline`` is the pure rule; the fast lane applies it in its
connection timer, ``PacedBody`` to aiohttp's stream.
"""

from __future__ import annotations

import asyncio

import aiohttp

from ..errors import RequestTimeout
from ..live import ClientTimeouts

TOO_SLOW = "the request body arrived too slowly"


def body_deadline(
    deadline: float, now: float, received: int, *, idle: float, min_rate: float
) -> float:
    """The body's new deadline once ``received`` more bytes came at ``now`` (any clock,
    in seconds); a body starts with ``now + idle``. Without a minimum rate, only the
    silence counts."""
    if min_rate <= 0:
        return now + idle
    return min(now + idle, deadline + received / min_rate)


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
        self._deadline: float | None = None
        self.received = 0

    def at_eof(self) -> bool:
        return self._content.at_eof()

    async def next(self) -> bytes:
        """The next bytes of the body; b"" at its end."""
        timeouts = self._timeouts
        if self._deadline is None:
            self._deadline = self._loop.time() + timeouts.body
        try:
            async with asyncio.timeout_at(self._deadline):
                data = await self._content.readany()
        except TimeoutError as exc:
            raise too_slow(timeouts) from exc
        self.received += len(data)
        self._deadline = body_deadline(
            self._deadline,
            self._loop.time(),
            len(data),
            idle=timeouts.body,
            min_rate=timeouts.body_min_rate,
        )
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
