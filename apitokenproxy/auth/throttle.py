"""Failed-attempt throttling per client address and per user name.

A fixed window per key: after ``max_failures`` failures within
``window_seconds`` the key is throttled until its window ends. At most
``max_tracked`` keys are remembered; under a flood of distinct addresses the
oldest are forgotten first, so memory stays bounded (a forgotten address
starts afresh, which a flood of that size could have had anyway).

With a ``shared`` counter (the token store), every failure is also counted
there and the larger count wins, so instances on one store share one budget:
spreading guesses over instances does not multiply it. Checking stays local
and in memory: a request with a good token never waits for the store. If the
shared counter cannot be reached, counting goes on locally.

Throttling never refuses a correct token: behind a load balancer every client
may share one address, and a user name is anyone's to guess against. What a
throttled key gets instead (see ``authentication.TokenVerifier``):

- its failed attempts are answered 429 with ``Retry-After`` (and still counted);
- its checks of tokens not yet verified run one at a time (``Turns``), so it
  holds at most one argon2 verification and cannot crowd out anyone else;
- a throttled *user name* also has attempts that cannot be that user's token
  (malformed, unknown id, another owner's) refused at once, without argon2.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import StoreUnavailable, TooManyRequests

log = logging.getLogger(__name__)


def user_key(username: str) -> str:
    return f"user {username.casefold()}"


def throttle_keys(client: str | None, username: str | None) -> list[str]:
    """What a token attempt counts against: the caller's address and the user name it gives."""
    keys = [f"address {client}"] if client else []
    return [*keys, user_key(username)] if username else keys


def too_many(throttled: Mapping[str, int]) -> TooManyRequests | None:
    """The 429 for a failed attempt whose keys include throttled ones (key: seconds
    left), naming the one throttled longest; None if none is, and a 401 stands."""
    if not throttled:
        return None
    key, wait = max(throttled.items(), key=lambda item: item[1])
    kind, _, who = key.partition(" ")
    where = f"from {who}" if kind == "address" else f"for {who}"
    return TooManyRequests(
        f"too many failed token attempts {where}; retry in {wait} s", retry_after=wait
    )


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
        self.retune(max_failures, window_seconds, max_tracked)
        self._clock = clock
        self._windows: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def retune(self, max_failures: int, window_seconds: float, max_tracked: int) -> None:
        """New limits, from a configuration reload; the counts so far stand."""
        self._max = max_failures
        self._window = window_seconds
        self._max_tracked = max_tracked

    def retry_after(self, key: str) -> int | None:
        """Seconds until ``key`` is no longer throttled, or None if it is not."""
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


@dataclass
class _Queue:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # the holder and the waiters


class Turns:
    """One holder at a time per key, first come first served.

    A key's lock exists only while someone holds or waits for it, so memory
    is bounded by the requests in progress, however many keys come and go.
    """

    def __init__(self) -> None:
        self._queues: dict[str, _Queue] = {}

    async def take(self, keys: Iterable[str]) -> Callable[[], None]:
        """Wait for the turn of every key; return the function that ends them.

        Keys are taken in sorted order, so two callers never wait for each
        other in a circle. With no keys nothing waits.
        """
        held: list[str] = []
        try:
            for key in sorted(keys):
                queue = self._queues.setdefault(key, _Queue())
                queue.users += 1
                try:
                    await queue.lock.acquire()
                except BaseException:
                    self._leave(key)
                    raise
                held.append(key)
        except BaseException:
            self._end(held)
            raise
        return functools.partial(self._end, held)

    def _end(self, keys: list[str]) -> None:
        for key in keys:
            self._queues[key].lock.release()
            self._leave(key)

    def _leave(self, key: str) -> None:
        queue = self._queues[key]
        queue.users -= 1
        if not queue.users:
            del self._queues[key]

    def __len__(self) -> int:
        return len(self._queues)
