"""The background task that sends expiry warnings: one per process, safe with many.

Each scan asks the store for tokens expiring within the largest
``notify.warn_days``, decides which warning each is due (``schedule.py``),
and for every channel claims that warning in the store before sending it.
The claim is atomic across processes and instances, so a warning goes out
once however many run the scan. A claim is a lease: if its process dies
mid-send, another takes the warning over when the lease ends. A failed
send is retried after ``notify.retry_seconds``, doubling, until
``notify.max_attempts`` have failed; every outcome is counted in
``ExpiryNotifier.counts`` and logged.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence

from ..config import NotifyConfig
from ..errors import NotificationFailed, ProxyError
from ..periodic import Periodic
from ..store import TokenStore, WarningKey
from .channel import Channel
from .message import ExpiryWarning
from .schedule import DAY_MS, due_days, retry_delay_ms

log = logging.getLogger(__name__)

# How long a claimed warning is its process's alone: well beyond any send's timeout.
LEASE_MS = 600_000


class ExpiryNotifier:
    def __init__(
        self,
        store: TokenStore,
        config: NotifyConfig,
        clock: Callable[[], int],
        channels: Sequence[Channel],
    ) -> None:
        self._store = store
        self._config = config
        self._clock = clock
        self._channels = tuple(channels)
        # "<channel>.sent", "<channel>.failed" (each failed attempt), "<channel>.gave_up".
        self.counts: Counter[str] = Counter()
        self._periodic = Periodic(
            self._scan, config.interval_seconds, name="expiry warnings", first_delay_seconds=0
        )

    async def run_once(self) -> bool:
        """One scan; True if a send failed and will be retried."""
        config = self._config
        now = self._clock()
        await self._store.prune_warnings(now - DAY_MS)
        horizon = now + max(config.warn_days) * DAY_MS
        retry = False
        for record in await self._store.expiring(now, horizon):
            days = due_days(record.valid_until, now, config.warn_days)
            if days is None or record.valid_until is None:
                continue
            warning = ExpiryWarning.of(record, days)
            for channel in self._channels:
                key = WarningKey(record.id, days, record.valid_until, channel.name)
                retry |= await self._send(channel, key, warning)
        return retry

    async def _send(self, channel: Channel, key: WarningKey, warning: ExpiryWarning) -> bool:
        """Claim and send one warning; True if it failed and will be retried."""
        config = self._config
        now = self._clock()
        attempts = await self._store.claim_warning(key, now, LEASE_MS, config.max_attempts)
        if attempts is None:
            return False  # sent, given up, or another process's
        try:
            await channel.send(warning)
        except NotificationFailed as exc:
            failed = await self._store.warning_failed(
                key, now + retry_delay_ms(int(config.retry_seconds * 1000), attempts + 1)
            )
            self.counts[f"{channel.name}.failed"] += 1
            if failed >= config.max_attempts:
                self.counts[f"{channel.name}.gave_up"] += 1
                log.error(
                    "gave up the %s warning for token %d after %d attempts: %s",
                    channel.name, key.token_id, failed, exc.reason,
                )  # fmt: skip
                return False
            log.warning(
                "the %s warning for token %d failed (attempt %d of %d), will retry: %s",
                channel.name, key.token_id, failed, config.max_attempts, exc.reason,
            )  # fmt: skip
            return True
        await self._store.warning_sent(key, self._clock())
        self.counts[f"{channel.name}.sent"] += 1
        log.info(
            "sent the %d-day %s warning for token %d of %s",
            key.days, channel.name, key.token_id, warning.owner_name,
        )  # fmt: skip
        return False

    def start(self) -> None:
        """Scan now, then every ``notify.interval_seconds`` (sooner while a retry waits)."""
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def _scan(self) -> float | None:
        """One scan; the seconds until the next when a retry waits."""
        config = self._config
        try:
            retry = await self.run_once()
        except ProxyError as exc:
            log.warning("cannot scan for expiring tokens: %s", exc.message)
            retry = False
        return min(config.retry_seconds, config.interval_seconds) if retry else None
