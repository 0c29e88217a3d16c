"""One lazy timer per connection: when a client's time for its head, body or silence runs out.

Moving a deadline costs no timer handle: the timer is made once and, when it
fires early (the deadline moved later meanwhile), re-armed for the new one.
Only a deadline moved earlier (a body's pace, ``pacing.py``) replaces it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Deadline:
    """Calls ``expired`` once the deadline set last has passed, unless it was cleared."""

    def __init__(self, loop: asyncio.AbstractEventLoop, expired: Callable[[], None]) -> None:
        self._loop = loop
        self._expired = expired
        self._timer: asyncio.TimerHandle | None = None
        self.at: float | None = None  # loop time, or None: no deadline

    def after(self, seconds: float) -> None:
        """The deadline is ``seconds`` from now (a later one needs no new timer)."""
        self.at = self._loop.time() + seconds
        if self._timer is None:
            self._timer = self._loop.call_at(self.at, self._fire)

    def at_most(self, when: float) -> None:
        """The deadline is ``when``, earlier or later than the one set."""
        self.at = when
        timer = self._timer
        if timer is not None and timer.when() > when:
            timer.cancel()
            self._timer = None
        if self._timer is None:
            self._timer = self._loop.call_at(when, self._fire)

    def clear(self) -> None:
        """No deadline (the timer lapses when it fires)."""
        self.at = None

    def cancel(self) -> None:
        """No deadline and no timer: the connection is gone or handed on."""
        self.at = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        if self.at is None:
            return
        if self._loop.time() < self.at:
            self._timer = self._loop.call_at(self.at, self._fire)
            return
        self._expired()
