"""lastAccessed batches: how long since the last write (the metrics' flush lag)."""

from __future__ import annotations

from collections.abc import Mapping

from apitokenproxy.errors import StoreUnavailable
from apitokenproxy.store import TokenStore
from apitokenproxy.store.lastaccessed import LastAccessed


class Sick:
    def __init__(self, store: TokenStore) -> None:
        self.store = store
        self.failing = False

    async def record_access(self, times: Mapping[int, int]) -> None:
        if self.failing:
            raise StoreUnavailable("locked")
        await self.store.record_access(times)


async def test_the_age_restarts_at_each_write_and_grows_while_writes_fail(
    store: TokenStore,
) -> None:
    sick = Sick(store)
    access = LastAccessed(sick, flush_seconds=60)  # type: ignore[arg-type]
    access.record(1, 5)
    await access.flush()
    written = access.age()
    sick.failing = True
    access.record(1, 6)
    await access.flush()  # kept for the next try
    assert access.age() >= written
    sick.failing = False
    before = access.age()
    await access.flush()
    assert access.age() < before  # just written
