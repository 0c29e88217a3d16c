"""Failed-attempt throttling per client address and per user name.

A fixed window per key: after ``max_failures`` failures within
``window_seconds`` the key is throttled until its window ends. At most
``max_tracked`` keys are remembered; under a flood of distinct addresses the
oldest are forgotten first, so memory stays bounded (a forgotten address
starts afresh, which a flood of that size could have had anyway).

With a ``shared`` counter (the token store), every failure up to the limit
is also counted there and the larger count wins, so instances on one store
share one budget: spreading guesses over instances does not multiply it.
Failures beyond the limit are counted locally only: they change nothing
another instance decides, and writing each would let a flood queue every
token check's store read behind its writes. Checking stays local
and in memory: a request with a good token never waits for the store. If the
shared counter cannot be reached, counting goes on locally.

An IPv6 client counts as its /64 (``address_key``): a host usually gets a
whole /64, and each of its addresses would otherwise be a fresh budget.

Throttling never refuses a correct token: behind a load balancer every client
may share one address, and a user name is anyone's to guess against. What a
throttled key gets instead (see ``verifier.TokenVerifier``):

- its failed attempts are answered 429 with ``Retry-After`` (and still counted);
- a throttled *user name* also has attempts that cannot be that user's token
  (malformed, unknown id, another owner's) refused at once, without argon2.

Checks that need argon2 wait in lanes (``Lanes``): one at a time per key,
and a *suspect* key's (one that failed within the last window, throttled or
not yet) in a small budget shared by every suspect key, so that a flood of
bad tokens from many addresses never takes the hasher's places that a first
use from anyone else needs.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import StoreUnavailable, TooManyRequests
from ..live import Live

log = logging.getLogger(__name__)


def user_key(username: str) -> str:
    return f"user {username.casefold()}"


# IPv4 hosts reached through the well-known NAT64 prefix (RFC 6052): the last 32 bits.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def address_key(client: str) -> str:
    """Who a client address is, for counting its failures.

    An IPv6 address counts as its /64: a host usually gets a whole /64 (SLAAC,
    privacy addresses, a delegated prefix), so each address in it would
    otherwise be a fresh budget. An IPv6 form of an IPv4 host counts as that
    IPv4 address: IPv4-mapped (``::ffff:192.0.2.1``, an IPv4 client of a
    dual-stack socket), NAT64 (``64:ff9b::c000:201``), 6to4 (``2002:c000:201::``,
    whose host owns the whole /48) and Teredo (its client's public address).
    Anything else (an IPv4 address, ``unknown``) is its own key, unchanged.
    """
    if ":" not in client:
        return client  # IPv4 or "unknown": the common case, without parsing
    try:
        ip = ipaddress.IPv6Address(client)
    except ValueError:
        return client
    embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo and ip.teredo[1])
    if embedded is None and ip in NAT64:
        embedded = ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    if embedded:
        return str(embedded)
    return f"{ipaddress.IPv6Address(int(ip) >> 64 << 64)}/64"


def throttle_keys(client: str | None, username: str | None) -> list[str]:
    """What a token attempt counts against: the caller's address (``address_key``)
    and the user name it gives."""
    keys = [f"address {address_key(client)}"] if client else []
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
        live: Live,
        clock: Callable[[], float] = time.time,
        shared: SharedCounter | None = None,
    ) -> None:
        """The limits are ``live``'s (``auth.throttle``): a reload changes them, and the
        counts so far stand."""
        self._shared = shared
        self._live = live
        self._clock = clock
        # key: (window start, failures in the window, time of the latest failure)
        self._windows: OrderedDict[str, tuple[float, int, float]] = OrderedDict()

    @property
    def _max(self) -> int:
        return self._live.now.throttle.max_failures

    @property
    def _window(self) -> float:
        return self._live.now.throttle.window_seconds

    @property
    def _max_tracked(self) -> int:
        return self._live.now.throttle.max_tracked

    def retry_after(self, key: str) -> int | None:
        """Seconds until ``key`` is no longer throttled, or None if it is not."""
        entry = self._windows.get(key)
        if entry is None:
            return None
        start, count, latest = entry
        now = self._clock()
        remaining = start + self._window - now
        if remaining <= 0:
            if now - latest >= self._window:
                del self._windows[key]  # not even suspect any more
            return None
        return math.ceil(remaining) if count >= self._max else None

    def suspect(self, key: str) -> bool:
        """Whether ``key`` failed within the last window, throttled or not.

        Measured from the latest failure, not from the window's start: a
        source that keeps failing stays suspect when its window starts
        afresh, so a long flood's windows never end in a burst of checks
        taken for first uses.
        """
        entry = self._windows.get(key)
        return entry is not None and self._clock() - entry[2] < self._window

    def mark_suspect(self, key: str) -> None:
        """Make ``key`` suspect at once, before its failure is counted (``record_failure``
        does that, and may wait for the store): a check waiting for the key's turn
        must already know."""
        now = self._clock()
        start, count, _ = self._windows.pop(key, (now, 0, now))
        self._windows[key] = (start, count, now)
        self._trim()

    async def record_failure(self, key: str) -> None:
        now = self._clock()
        start, count, _ = self._windows.pop(key, (now, 0, now))
        if now - start >= self._window:
            start, count = now, 0
        count += 1
        self._windows[key] = (start, count, now)
        # Beyond the limit a failure changes nothing another instance decides
        # (the window's start stands, the limit is reached): the store is not
        # asked, so a flood from throttled sources costs no writes, which would
        # queue every token check's store read behind them.
        if self._shared is not None and count <= self._max:
            try:
                shared_start, shared_count = await self._shared.add_failure(
                    key, int(now * 1000), int(self._window * 1000)
                )
            except StoreUnavailable as exc:
                log.warning("failure not counted in the shared store: %s", exc.message)
            else:
                if shared_count > count:
                    start, count = shared_start / 1000, shared_count
                    self._windows[key] = (start, count, now)
                    self._windows.move_to_end(key)
        if count == self._max:
            log.warning("throttling %s: %d failed token attempts in %ds", key, count, self._window)
        self._trim()

    def _trim(self) -> None:
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


class Lanes:
    """Where a check that needs argon2 waits, so that no source crowds out the others.

    Every check first takes the turn of each of its keys (``Turns``): one
    argon2 check at a time per address and per user name, so a source that
    opens many connections holds one place, not one per connection. A check
    from a suspect source (a key that failed within the window,
    ``FailureThrottle.suspect``, judged once the turn is its own, so that
    what the check before it found counts) then also takes one of ``budget``
    places shared by every suspect source. Both waits are in order of
    arrival, and last as long as the request does (a client that hangs up
    leaves the line).

    So suspect sources together hold at most ``budget`` of the hasher's
    pending verifications, however many addresses they have, and never the
    places that first uses from clean sources need; a fresh address holds at
    most one until its first failure makes it suspect. Suspect sources wait
    rather than being refused, so a correct token from a suspect address is
    still checked and accepted. The hasher's own bound (503 ``Busy``) stays.
    """

    def __init__(self, throttle: FailureThrottle, budget: int) -> None:
        self._throttle = throttle
        self._turns = Turns()
        self._places = asyncio.Semaphore(budget)

    async def take(self, keys: Iterable[str]) -> Callable[[], None]:
        """Wait for the turn of every key and, if one is suspect, a shared place;
        return the function that gives them back. With no keys nothing waits."""
        keys = list(keys)
        end_turns = await self._turns.take(keys)
        if not any(self._throttle.suspect(key) for key in keys):
            return end_turns
        try:
            await self._places.acquire()
        except BaseException:
            end_turns()
            raise

        def end() -> None:
            self._places.release()
            end_turns()

        return end

    def __len__(self) -> int:
        """Keys holding or waiting for a turn (bounded by the requests under way)."""
        return len(self._turns)
