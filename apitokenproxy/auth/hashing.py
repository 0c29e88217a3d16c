"""Argon2id hashing of token secrets, off the event loop and bounded.

Parameters: argon2id, 19 MiB of memory, 2 passes, 1 lane (OWASP's baseline
for argon2id, about 18 ms here). Token secrets carry ~190 random bits, so no
work factor is needed against guessing them; the hash exists so that a copy
of the database does not hand out working tokens, and the parameters keep the
standard's margin without making a cache miss expensive. They are stored in
each hash, so raising them later only affects new tokens.

argon2-cffi releases the GIL while hashing, so a small thread pool runs the
work beside the event loop. At most ``max_pending`` verifications may wait for
it; beyond that ``Busy`` is raised at once, so an overload costs a quick 503
and the loop keeps serving everyone else. Which checks get here at all, and
how many from sources that keep failing, is the verifier's decision
(``verifier.TokenVerifier``, ``throttle.Lanes``): a flood of bad tokens must
not fill these places for the first uses of good ones.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ..errors import Busy
from ..ops.histograms import LocalHistogram
from ..ops.metrics import ARGON2_BUCKETS

TIME_COST = 2
MEMORY_COST_KIB = 19 * 1024
PARALLELISM = 1


class SecretHasher:
    """Hashes and verifies token secrets in a bounded thread pool."""

    def __init__(
        self,
        *,
        workers: int = 2,
        max_pending: int = 64,
        time_cost: int = TIME_COST,
        memory_cost: int = MEMORY_COST_KIB,
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=PARALLELISM
        )
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")
        self._slots = asyncio.Semaphore(max_pending)
        # For the metrics: verifications done, running or waiting, and their times.
        self.verified = 0
        self.queued = 0
        self.seconds = LocalHistogram(ARGON2_BUCKETS)

    async def hash(self, secret: str) -> str:
        # Creation is rare and authenticated, so it waits rather than failing.
        async with self._slots:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, self._hasher.hash, secret)

    async def verify(self, stored_hash: str, secret: str) -> bool:
        if self._slots.locked():
            raise Busy("too many token checks are in progress; retry in a moment")
        self.queued += 1
        started = time.perf_counter()
        try:
            async with self._slots:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self._pool, self._verify, stored_hash, secret)
        finally:
            self.queued -= 1
            self.verified += 1
            self.seconds.observe(time.perf_counter() - started)

    def _verify(self, stored_hash: str, secret: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, secret)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
