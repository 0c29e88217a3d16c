"""The aiohttp lane's requests in flight, counted, so that a clean stop can wait for them.

(The fast lane knows its own: each connection says whether it is busy,
``fastlane.FastLane.drained``.)
"""

from __future__ import annotations

import asyncio


class InFlight:
    """A count of requests being handled, and a way to wait for it to reach zero."""

    def __init__(self) -> None:
        self.count = 0
        self._idle: asyncio.Event | None = None

    def enter(self) -> None:
        self.count += 1

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0 and self._idle is not None:
            self._idle.set()

    async def drained(self) -> None:
        """Return once no request is in flight."""
        while self.count > 0:
            self._idle = asyncio.Event()
            await self._idle.wait()
        self._idle = None
