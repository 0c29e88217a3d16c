"""The bounded TTL cache and the keyed digests that key it."""

from __future__ import annotations

import hashlib

from apitokenproxy.auth.cache import KeyedDigest, TTLCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire() -> None:
    clock = Clock()
    cache: TTLCache[str, int] = TTLCache(10, 5, clock)
    cache.put("a", 1)
    clock.now = 4.9
    assert cache.get("a") == 1
    clock.now = 5.0
    assert cache.get("a") is None
    assert len(cache) == 0


def test_size_is_bounded_and_least_recent_goes_first() -> None:
    cache: TTLCache[int, int] = TTLCache(3, 60, Clock())
    for i in range(3):
        cache.put(i, i)
    cache.get(0)  # 0 is now the most recent
    cache.put(3, 3)
    assert cache.get(1) is None
    assert [cache.get(k) for k in (0, 2, 3)] == [0, 2, 3]
    for i in range(10_000):
        cache.put(100 + i, i)
    assert len(cache) == 3


def test_discard_where_and_zero_ttl() -> None:
    cache: TTLCache[str, int] = TTLCache(10, 60, Clock())
    for key, value in {"a": 1, "b": 2, "c": 1}.items():
        cache.put(key, value)
    assert cache.discard_where(lambda v: v == 1) == 2
    assert (len(cache), cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 2, None)
    never: TTLCache[str, int] = TTLCache(10, 0, Clock())
    never.put("a", 1)
    assert never.get("a") is None


def test_keyed_digest_is_blake2b_under_the_instances_key() -> None:
    digest = KeyedDigest()
    token = "atpx_1_nKUGjQ3QcGrZIxqPBdtNtz0Jah6JM4sN0Qkx86"
    first = digest(token)
    assert first == digest(token)
    assert len(first) == 32 and token.encode() not in first
    assert digest("a", "b") == digest("a\x00b") != digest("ab")
    # Another process (another instance) keys differently: digests reveal nothing across runs.
    assert KeyedDigest()(token) != first
    # And it is a keyed MAC: the same message without the key hashes otherwise.
    assert first != hashlib.blake2b(token.encode(), digest_size=32).digest()


def test_keyed_digest_matches_one_shot_keyed_blake2b() -> None:
    key = bytes(range(32))
    digest = KeyedDigest()
    digest._keyed = hashlib.blake2b(key=key, digest_size=32)
    for message in ("", "x", "atpx_9_" + "A" * 40, "user\x00atpx_1_z", "\udc80"):
        expected = hashlib.blake2b(
            message.encode("utf-8", "surrogatepass"), key=key, digest_size=32
        ).digest()
        assert digest(message) == expected
