"""Audit retention: pruned oldest first in bounded batches, never one giant DELETE."""

from __future__ import annotations

import asyncio
import logging

import pytest

from apitokenproxy.errors import StoreUnavailable
from apitokenproxy.store import TokenStore
from apitokenproxy.store.audit import Action, AuditQuery, How
from apitokenproxy.store.retention import DAY_MS, AuditRetention

from ..conftest import START_MS, FakeClock
from .test_contract import BASE


class PruneLog:
    """Stands in for the store's prune_audit: holds ``waiting`` events older than
    any cut-off and records each call's arguments."""

    def __init__(self, waiting: int, fail: bool = False) -> None:
        self.waiting = waiting
        self.fail = fail
        self.calls: list[tuple[int, int]] = []
        self.called = asyncio.Event()
        self.release: asyncio.Event | None = None  # when set, each call waits for it
        self.finished = 0

    async def prune_audit(self, before: int, limit: int) -> int:
        self.calls.append((before, limit))
        self.called.set()
        if self.release is not None:
            await self.release.wait()
        self.finished += 1
        if self.fail:
            raise StoreUnavailable("the token database is locked")
        deleted = min(self.waiting, limit)
        self.waiting -= deleted
        return deleted


@pytest.mark.parametrize(
    ("waiting", "batches"),
    [(0, 1), (1, 1), (999, 1), (1000, 2), (2500, 3), (3000, 4)],
)
async def test_prune_repeats_bounded_batches_until_one_is_short(waiting: int, batches: int) -> None:
    fake = PruneLog(waiting)
    clock = FakeClock()
    retention = AuditRetention(fake, 30, clock, batch=1000)  # type: ignore[arg-type]
    assert await retention.prune() == waiting
    assert fake.calls == [(START_MS - 30 * DAY_MS, 1000)] * batches
    assert fake.waiting == 0


async def test_a_store_failure_is_logged_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    fake = PruneLog(5, fail=True)
    retention = AuditRetention(
        fake,  # type: ignore[arg-type]
        1,
        FakeClock(),
        interval_seconds=0.01,
        first_delay_seconds=0,
    )
    retention.start()
    try:
        with caplog.at_level(logging.WARNING):
            await calls(fake, 2)  # failed, and tried again
        fake.fail = False
        await calls(fake, len(fake.calls) + 1)
    finally:
        await retention.stop()
    assert "audit trail not pruned, will retry" in caplog.text
    assert fake.waiting == 0


async def calls(fake: PruneLog, count: int) -> None:
    async with asyncio.timeout(2):
        while len(fake.calls) < count:
            fake.called.clear()
            await fake.called.wait()


async def test_retention_on_each_store(store: TokenStore) -> None:
    clock = FakeClock()
    times = [clock.now - 4 * DAY_MS, clock.now - 3 * DAY_MS, clock.now - 2 * DAY_MS, clock.now]
    await make_events(store, times)
    retention = AuditRetention(store, 2, clock, batch=1)
    # Exactly two days old is kept: only older events go, one batch at a time.
    assert await retention.prune() == 2
    kept = await store.audit_events(AuditQuery(), 0, 10)
    assert [e.at for e in kept.items] == [clock.now, clock.now - 2 * DAY_MS]


async def make_events(store: TokenStore, times: list[int]) -> None:
    for at in times:
        await store.create(BASE, Action(at=at, actor_key="k", actor_name="n", how=How.CLI))


async def test_stop_lets_the_batch_under_way_finish() -> None:
    # A query cancelled mid-flight can leave a PostgreSQL connection holding its locks.
    fake = PruneLog(5000)
    fake.release = asyncio.Event()
    retention = AuditRetention(
        fake,  # type: ignore[arg-type]
        1,
        FakeClock(),
        batch=1000,
        first_delay_seconds=0,
    )
    retention.start()
    await calls(fake, 1)
    stopping = asyncio.create_task(retention.stop())
    await asyncio.sleep(0.05)
    assert not stopping.done()  # waiting for the batch, not cancelling it
    fake.release.set()
    async with asyncio.timeout(2):
        await stopping
    assert (len(fake.calls), fake.finished) == (1, 1)  # and no batch after it


async def test_the_first_prune_waits_and_stop_does_not() -> None:
    fake = PruneLog(5)
    retention = AuditRetention(fake, 1, FakeClock(), first_delay_seconds=0.2)  # type: ignore[arg-type]
    retention.start()
    await asyncio.sleep(0.05)
    assert fake.calls == []  # not at once: start-up is busy enough
    await calls(fake, 1)
    assert fake.waiting == 0
    async with asyncio.timeout(1):  # an hour's pause ends at once
        await retention.stop()
