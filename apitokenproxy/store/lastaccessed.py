"""``lastAccessed`` and ``lastAccessedFrom`` kept current without a database write per request.

Uses are collected in memory (one entry per token, the latest time wins and
brings its client address) and written in one transaction every
``flush_seconds`` and at shutdown. Recording a use is two dictionary stores
when the time moved on, and nothing else: no allocation, no await. A crash
(SIGKILL, power loss) loses at most the uses of the last interval: the token
keeps working, only its ``lastAccessed`` is that much older than the truth.
If a flush fails (store locked or down) the times are kept for the next one.
"""

from __future__ import annotations

import logging
import time

from ..errors import StoreUnavailable
from ..periodic import Periodic
from . import TokenStore
from .base import Use

log = logging.getLogger(__name__)

# A write under way at a clean stop finishes (up to this long) before the last one.
STOP_GRACE_SECONDS = 2.0


class LastAccessed:
    def __init__(self, store: TokenStore, flush_seconds: float) -> None:
        self._store = store
        self._pending: dict[int, int] = {}
        # Kept apart from the times, so recording a use builds no tuple.
        self._from: dict[int, str] = {}
        self._periodic = Periodic(
            self.flush,
            flush_seconds,
            name="lastAccessed flusher",
            final=True,
            grace_seconds=STOP_GRACE_SECONDS,
        )
        self._written_at = time.monotonic()  # the last successful write (or the start)

    def record(self, token_id: int, at_ms: int, client: str) -> None:
        """A use of a token at ``at_ms`` from address ``client``."""
        if self._pending.get(token_id, 0) < at_ms:
            self._pending[token_id] = at_ms
            self._from[token_id] = client

    def pending(self) -> dict[int, Use]:
        """The uses not yet written, by token id."""
        return {i: (at, self._from.get(i, "")) for i, at in self._pending.items()}

    async def flush(self) -> None:
        batch = self.pending()
        self._pending, self._from = {}, {}
        try:
            await self._store.record_access(batch)
            self._written_at = time.monotonic()
        except StoreUnavailable as exc:
            for token_id, (at, client) in batch.items():
                self.record(token_id, at, client)
            log.warning("lastAccessed not written, will retry: %s", exc.message)

    def age(self) -> float:
        """Seconds since lastAccessed times were last written (the metrics' flush lag)."""
        return time.monotonic() - self._written_at

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        """Stop the periodic flush and write what is pending."""
        await self._periodic.stop()
