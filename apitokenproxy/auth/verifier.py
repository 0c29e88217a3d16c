"""Which token a request carries, and whether it is good: checked here, never upstream.

``TokenVerifier`` answers from the store, with a bounded cache of verified
tokens so that a token already seen costs neither a query nor argon2, and
one check shared by every concurrent first use of a token. Cache keys are
keyed BLAKE2b digests (``cache.KeyedDigest``), never a plaintext token.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

from ..errors import Unauthorized
from ..store import TokenRecord, TokenStore
from ..store.lastaccessed import LastAccessed
from .cache import KeyedDigest, TTLCache
from .hashing import SecretHasher
from .throttle import FailureThrottle, Turns, throttle_keys, too_many, user_key
from .tokens import MalformedToken, parse_token

Clock = Callable[[], int]


class InvalidToken(Unauthorized):
    """A token that is malformed, unknown, wrong, expired or not the named user's."""

    code = "invalid_token"


def rejection(record: TokenRecord, username: str | None, now_ms: int) -> str | None:
    """Why a verified token is refused now (expired, or not the named user's); None if it is not."""
    if record.expired(now_ms):
        expired_at = datetime.fromtimestamp((record.valid_until or 0) / 1000, tz=UTC)
        return f"the token expired on {expired_at:%Y-%m-%d %H:%M} UTC; create a new one"
    if username is not None and username.casefold() != record.owner_name.casefold():
        return "the token does not belong to the user name given with it"
    return None


class TokenVerifier:
    """Says which token a request carries and whether it is good, counting failures.

    Throttling never refuses a correct token. A verified token in the cache is
    accepted without looking at the throttle; any other is verified before the
    throttle decides anything, and only a failure becomes a 429. Guessing stays
    bounded because a throttled address or user name gets one argon2 check at
    a time (``Turns``), on top of the hasher's global bound (503 ``Busy``).

    Concurrent checks of one token share a single store query and argon2
    verification (a flight, keyed by the token's digest), so a crowd of first
    uses costs one check; each request still applies its own acceptance
    rules and counts its own failures.
    """

    def __init__(
        self,
        store: TokenStore,
        hasher: SecretHasher,
        access: LastAccessed,
        clock: Clock,
        throttle: FailureThrottle,
        *,
        cache_seconds: float,
        cache_size: int,
    ) -> None:
        self._throttle = throttle
        self._store = store
        self._hasher = hasher
        self._access = access
        self._clock = clock
        self._digest = KeyedDigest()
        self._cache: TTLCache[bytes, TokenRecord] = TTLCache(cache_size, cache_seconds)
        self._turns = Turns()
        self._flights: dict[bytes, asyncio.Task[TokenRecord]] = {}
        # Bumped by every revocation: a check that began before one may have
        # read a token since deleted, so its answer is not cached.
        self._epoch = 0
        self._dummy_hash: str | None = None

    @property
    def throttle(self) -> FailureThrottle:
        return self._throttle

    def verify_cached(self, token: str, username: str | None, client: str) -> TokenRecord | None:
        """The record of a token already verified and still good, without awaiting; None when
        the caller must await verify() (not cached, expired, or not the named user's), which
        then does the failure accounting. ``client`` is the caller's address, kept as
        the token's ``lastAccessedFrom``."""
        record = self._cache.get(self._digest(token))
        if record is None or self._accepted(record, username, client) is not None:
            return None
        return record

    async def verify(
        self, token: str, username: str | None = None, *, client: str | None = None
    ) -> TokenRecord:
        """The record of a good token; raise InvalidToken or TooManyRequests otherwise.

        ``username`` (from Basic auth) must match the owner, ignoring case.
        ``client`` is the caller's address, for throttling and
        ``lastAccessedFrom``. Every use is recorded for ``lastAccessed``,
        every failure counted against the address and the user name; a
        failure while either is throttled is TooManyRequests, never a good token.
        """
        keys = throttle_keys(client, username)
        digest = self._digest(token)
        try:
            record = self._cache.get(digest)
            if record is None:
                record = await self._check(token, digest, username, self._throttled(keys))
            problem = self._accepted(record, username, client or "")
            if problem is not None:
                raise InvalidToken(problem)
            return record
        except InvalidToken as exc:
            # Decided before this failure is counted: the attempt that reaches
            # the limit is still answered 401, the next ones 429.
            refusal = too_many(self._throttled(keys))
            for key in keys:
                await self._throttle.record_failure(key)
            if refusal is not None:
                raise refusal from exc
            raise

    def _throttled(self, keys: list[str]) -> dict[str, int]:
        waits = {key: self._throttle.retry_after(key) for key in keys}
        return {key: wait for key, wait in waits.items() if wait is not None}

    def _accepted(self, record: TokenRecord, username: str | None, client: str) -> str | None:
        """Record a use of a verified token and return None, or return why it is refused."""
        now = self._clock()
        problem = rejection(record, username, now)
        if problem is None:
            self._access.record(record.id, now, client)
        return problem

    async def _check(
        self, token: str, digest: bytes, username: str | None, throttled: Mapping[str, int]
    ) -> TokenRecord:
        """Verify a token that is not in the cache.

        A check of the same token already under way is joined: it costs
        nothing more. Otherwise each throttled key waits for its turn, so it
        never has more than one argon2 verification in flight.
        """
        if username and user_key(username) in throttled:
            await self._guard(token, username)
        flight = self._flights.get(digest)
        if flight is None:
            end_turns = await self._turns.take(throttled)
            record = self._cache.get(digest)  # verified by a check that had the turn before
            if record is not None:
                end_turns()
                return record
            flight = self._flights.get(digest) or self._launch(token, digest)
            # The turn lasts as long as the check, even if this request stops
            # waiting for it (a client that hangs up cannot start a second).
            flight.add_done_callback(lambda _: end_turns())
        # Shielded: one waiter giving up must not cancel the others' check.
        return await asyncio.shield(flight)

    async def _guard(self, token: str, username: str) -> None:
        """While ``username`` is throttled, only a token of that user's is worth
        argon2's time: refuse anything else at once (it is counted as a failure)."""
        try:
            record = await self._store.get(parse_token(token).token_id)
        except MalformedToken as exc:
            raise InvalidToken(str(exc)) from exc
        if record is None or record.owner_name.casefold() != username.casefold():
            raise InvalidToken("the token is unknown or not the named user's")

    def _launch(self, token: str, digest: bytes) -> asyncio.Task[TokenRecord]:
        flight = asyncio.create_task(self._verify_uncached(token, digest, self._epoch))
        self._flights[digest] = flight
        flight.add_done_callback(functools.partial(self._landed, digest))
        return flight

    def _landed(self, digest: bytes, flight: asyncio.Task[TokenRecord]) -> None:
        if self._flights.get(digest) is flight:
            del self._flights[digest]
        if not flight.cancelled():
            # Every waiter may have given up; the outcome is theirs, not the loop's to report.
            flight.exception()

    async def _verify_uncached(self, token: str, digest: bytes, epoch: int) -> TokenRecord:
        """Check a token against the store, and cache it if it is good."""
        try:
            parsed = parse_token(token)
        except MalformedToken as exc:
            # Same argon2 time as any other refusal: the answer's timing tells
            # nothing, not even whether the checksum held.
            await self._hasher.verify(await self._dummy(), token)
            raise InvalidToken(str(exc)) from exc
        record = await self._store.get(parsed.token_id)
        if record is None:
            # Spend the same argon2 time as for a real id, so response times
            # do not tell which token ids exist.
            await self._hasher.verify(await self._dummy(), parsed.secret)
            raise InvalidToken("the token is unknown or has been revoked")
        if not await self._hasher.verify(record.secret_hash, parsed.secret):
            raise InvalidToken("the token is unknown or has been revoked")
        if epoch == self._epoch:
            self._cache.put(digest, record)
        return record

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await self._hasher.hash(secrets.token_urlsafe(24))
        return self._dummy_hash

    def forget(self, token_ids: Iterable[int]) -> None:
        """Drop revoked tokens from the cache at once."""
        doomed = set(token_ids)
        if doomed:
            self._cache.discard_where(lambda record: record.id in doomed)
            self._access.forget(doomed)
            self._revoked()

    def forget_all(self) -> None:
        self._cache.clear()
        self._revoked()

    def _revoked(self) -> None:
        # Checks under way may have read a revoked token: let them finish for
        # their own waiters, but cache nothing from them and let no one join.
        self._epoch += 1
        self._flights.clear()
