"""The bounded TTL cache."""

from __future__ import annotations

from apitokenproxy.auth.cache import TTLCache


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
