"""Failed-attempt throttling per client address and per user name.

A fixed window per key: after ``max_failures`` failures within
``window_seconds`` the key is blocked until its window ends. At most
``max_tracked`` keys are remembered; under a flood of distinct addresses the
oldest are forgotten first, so memory stays bounded (a forgotten address
starts afresh, which a flood of that size could have had anyway).

With a ``shared`` counter (the token store), every failure is also counted
there and the larger count wins, so instances on one store share one budget:
spreading guesses over instances does not multiply it. Checking stays local
and in memory: a request with a good token never waits for the store. If the
shared counter cannot be reached, counting goes on locally.

How the two kinds of key are used (see ``authentication.TokenVerifier``):

- a blocked *address* is refused before any work is done;
- a blocked *user name* only refuses attempts that cannot be that user's
  token (unknown id, or another owner's). The user's own valid token still
  works, so guessing against a victim's name cannot lock the victim out.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from .errors import StoreUnavailable

log = logging.getLogger(__name__)


class SharedCounter(Protocol):
    async def add_failure(self, key: str, now_ms: int, window_ms: int) -> tuple[int, int]: ...


class FailureThrottle:
    def __init__(
        self,
        max_failures: int,
        window_seconds: float,
        max_tracked: int,
        clock: Callable[[], float] = time.time,
        shared: SharedCounter | None = None,
    ) -> None:
        self._shared = shared
        self._max = max_failures
        self._window = window_seconds
        self._max_tracked = max_tracked
        self._clock = clock
        self._windows: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def retry_after(self, key: str) -> int | None:
        """Seconds until ``key`` may try again, or None if it is not blocked."""
        entry = self._windows.get(key)
        if entry is None:
            return None
        start, count = entry
        remaining = start + self._window - self._clock()
        if remaining <= 0:
            del self._windows[key]
            return None
        return math.ceil(remaining) if count >= self._max else None

    async def record_failure(self, key: str) -> None:
        now = self._clock()
        start, count = self._windows.pop(key, (now, 0))
        if now - start >= self._window:
            start, count = now, 0
        count += 1
        self._windows[key] = (start, count)
        if self._shared is not None:
            try:
                shared_start, shared_count = await self._shared.add_failure(
                    key, int(now * 1000), int(self._window * 1000)
                )
            except StoreUnavailable as exc:
                log.warning("failure not counted in the shared store: %s", exc.message)
            else:
                if shared_count > count:
                    start, count = shared_start / 1000, shared_count
                    self._windows[key] = (start, count)
                    self._windows.move_to_end(key)
        if count == self._max:
            log.warning("throttling %s: %d failed token attempts in %ds", key, count, self._window)
        while len(self._windows) > self._max_tracked:
            self._windows.popitem(last=False)

    def __len__(self) -> int:
        return len(self._windows)
