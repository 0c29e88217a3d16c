"""An async job run every so many seconds in a background task: the one loop the
proxy's periodic work shares (``lastAccessed`` writes, the metrics flush, the
audit trail's retention, the expiry warnings).

A job that raises is logged and runs again at the next interval: a periodic
job never ends the proxy. A job may return the seconds until its next run
(sooner while a retry waits), or None for the interval. ``stop`` ends the
wait at once; a run under way is given ``grace_seconds`` to finish (0: it is
cancelled), and with ``final`` the job runs once more, so what it writes out
at each interval is written at a clean stop too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[float | None]]


class Periodic:
    def __init__(
        self,
        job: Job,
        every_seconds: float,
        *,
        name: str,
        first_delay_seconds: float | None = None,
        final: bool = False,
        grace_seconds: float = 0.0,
    ) -> None:
        """Run ``job`` every ``every_seconds``, the first time after ``first_delay_seconds``
        (the interval unless given); ``name`` names the task and the log lines."""
        self._job = job
        self._every = every_seconds
        self._first_delay = every_seconds if first_delay_seconds is None else first_delay_seconds
        self._final = final
        self._grace = grace_seconds
        self.name = name
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Stop the runs (see the module's docstring); with ``final``, run once more."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), self._grace)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._final:
            await self._once()

    async def _run(self) -> None:
        delay = self._first_delay
        while not await self._stopped_within(delay):
            next_delay = await self._once()
            delay = self._every if next_delay is None else next_delay

    async def _once(self) -> float | None:
        try:
            return await self._job()
        except Exception:
            log.exception("%s failed; it runs again in %g s", self.name, self._every)
            return None

    async def _stopped_within(self, seconds: float) -> bool:
        """Wait ``seconds``, or less if ``stop`` is called; whether it was."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()
