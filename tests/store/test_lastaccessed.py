"""LastAccessed: the latest use of each token, with its address, written in batches,
and how long since the last write (the metrics' flush lag)."""

from __future__ import annotations

from collections.abc import Mapping

from apitokenproxy.errors import StoreUnavailable
from apitokenproxy.store import TokenStore
from apitokenproxy.store.base import Use
from apitokenproxy.store.lastaccessed import LastAccessed


class Batches:
    """Stands in for the store's record_access: keeps each batch, or fails."""

    def __init__(self) -> None:
        self.written: list[dict[int, Use]] = []
        self.fail = False

    async def record_access(self, uses: Mapping[int, Use]) -> None:
        if self.fail:
            raise StoreUnavailable("the token database is locked")
        self.written.append(dict(uses))


def tracker() -> tuple[LastAccessed, Batches]:
    store = Batches()
    return LastAccessed(store, flush_seconds=10), store  # type: ignore[arg-type]


async def test_the_latest_use_wins_and_brings_its_address() -> None:
    access, store = tracker()
    access.record(1, 100, "192.0.2.1")
    access.record(1, 300, "192.0.2.3")
    access.record(1, 200, "192.0.2.2")  # older than what is kept: ignored
    access.record(2, 50, "2001:db8::2")
    await access.flush()
    assert store.written == [{1: (300, "192.0.2.3"), 2: (50, "2001:db8::2")}]
    await access.flush()
    assert store.written[-1] == {}


async def test_a_failed_flush_keeps_times_and_addresses_for_the_next() -> None:
    access, store = tracker()
    access.record(1, 100, "192.0.2.1")
    store.fail = True
    await access.flush()
    access.record(2, 70, "192.0.2.7")
    store.fail = False
    await access.flush()
    assert store.written == [{1: (100, "192.0.2.1"), 2: (70, "192.0.2.7")}]


class Sick:
    def __init__(self, store: TokenStore) -> None:
        self.store = store
        self.failing = False

    async def record_access(self, uses: Mapping[int, Use]) -> None:
        if self.failing:
            raise StoreUnavailable("locked")
        await self.store.record_access(uses)


async def test_the_age_restarts_at_each_write_and_grows_while_writes_fail(
    store: TokenStore,
) -> None:
    sick = Sick(store)
    access = LastAccessed(sick, flush_seconds=60)  # type: ignore[arg-type]
    access.record(1, 5, "192.0.2.1")
    await access.flush()
    written = access.age()
    sick.failing = True
    access.record(1, 6, "192.0.2.1")
    await access.flush()  # kept for the next try
    assert access.age() >= written
    sick.failing = False
    before = access.age()
    await access.flush()
    assert access.age() < before  # just written
