"""Bounded, time-limited caches, and the keyed digests they are keyed by.

Used for verified tokens, for passwords the upstream accepted (keyed by a
keyed hash, never the plaintext) and for sysadmin answers. Memory stays
bounded however many distinct keys arrive: the oldest entry goes first.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    def __init__(
        self, max_size: int, ttl_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._max_size = max_size
        self._ttl = ttl_seconds
        self._clock = clock

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if self._clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        if self._ttl <= 0:
            return
        self._entries[key] = (self._clock() + self._ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_size:
            self._entries.popitem(last=False)

    def discard(self, key: K) -> None:
        self._entries.pop(key, None)

    def discard_where(self, predicate: Callable[[V], bool]) -> int:
        doomed = [k for k, (_, v) in self._entries.items() if predicate(v)]
        for key in doomed:
            del self._entries[key]
        return len(doomed)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class KeyedDigest:
    """A keyed BLAKE2b MAC under a per-process random key: cache keys that reveal nothing.

    BLAKE2b's keyed mode is a MAC by design, and one call where HMAC needs
    two hash passes; this sits on every request's hot path.
    """

    def __init__(self) -> None:
        # Keyed once: a copy of the keyed state skips hashing the key block
        # on every call (it is most of the cost of a short message), and gives
        # the same MAC as hashlib.blake2b(message, key=...).
        self._keyed = hashlib.blake2b(key=secrets.token_bytes(32), digest_size=32)

    def __call__(self, *parts: str) -> bytes:
        mac = self._keyed.copy()
        mac.update("\x00".join(parts).encode("utf-8", "surrogatepass"))
        return mac.digest()
