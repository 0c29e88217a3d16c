"""The audit trail's retention: events older than ``audit.retention_days`` are deleted.

Pruning runs ``first_delay_seconds`` after start-up (not at once: workers
start together, and start-up is busy enough) and then every
``interval_seconds``, in batches of
``batch`` events (oldest first), each its own short transaction, so a year
of backlog never becomes one giant DELETE that holds the database's write
lock. Every worker process prunes; that costs a few empty queries, and
whichever gets there first does the work. A failure is logged and retried
at the next interval: it never stops the proxy.

Stopping waits for the batch under way instead of cancelling it: a query
cancelled mid-flight can leave a PostgreSQL connection holding its locks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..errors import StoreUnavailable
from ..periodic import Periodic
from .base import TokenStore

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
BATCH = 1000
INTERVAL_SECONDS = 3600.0
FIRST_DELAY_SECONDS = 60.0
STOP_GRACE_SECONDS = 2.0


class AuditRetention:
    def __init__(
        self,
        store: TokenStore,
        retention_days: int,
        clock: Callable[[], int],
        *,
        batch: int = BATCH,
        interval_seconds: float = INTERVAL_SECONDS,
        first_delay_seconds: float = FIRST_DELAY_SECONDS,
    ) -> None:
        self._store = store
        self._retention_ms = retention_days * DAY_MS
        self._clock = clock
        self._batch = batch
        self._periodic = Periodic(
            self._run_once,
            interval_seconds,
            name="audit retention",
            first_delay_seconds=first_delay_seconds,
            grace_seconds=STOP_GRACE_SECONDS,
        )
        self._stopping = asyncio.Event()

    async def prune(self) -> int:
        """Delete every event older than the retention, a batch at a time, until none
        is left or ``stop`` is called; return how many were deleted."""
        before = self._clock() - self._retention_ms
        pruned = 0
        while not self._stopping.is_set():
            deleted = await self._store.prune_audit(before, self._batch)
            pruned += deleted
            if deleted < self._batch:
                break
            # Let requests waiting for the store go first.
            await asyncio.sleep(0)
        return pruned

    def start(self) -> None:
        self._stopping.clear()
        self._periodic.start()

    async def stop(self) -> None:
        """Stop after the batch under way, if any; one that has not ended within
        ``STOP_GRACE_SECONDS`` is cancelled (a store that stopped answering)."""
        self._stopping.set()
        await self._periodic.stop()

    async def _run_once(self) -> None:
        try:
            pruned = await self.prune()
            if pruned:
                log.info("audit trail: %d event(s) past retention deleted", pruned)
        except StoreUnavailable as exc:
            log.warning("audit trail not pruned, will retry: %s", exc.message)
