"""Which token a request carries, and whether it is good: checked here, never upstream.

``TokenVerifier`` answers from the store, with a bounded cache of verified
tokens so that a token already seen costs neither a query nor argon2, and
one check shared by every concurrent first use of a token. Cache keys are
keyed BLAKE2b digests (``cache.KeyedDigest``), never a plaintext token.
What is cached is a ``Grant`` (``grant.py``): the record with what each
request needs precomputed, and when the secret presented stops working.

After a rotation, the replaced secret is checked too, and accepted until the
grace ends. The cache never stretches that: a cached grant carries its own
deadline, checked against the clock on every use, and a rotation drops the
token's grants here at once and in every other process within a second
(``TokenStore.watch``), so the new secret is checked against the store.

Argon2 is spent only where nothing cheaper can decide, so that a flood of
bad tokens cannot buy it at will; what must not leak is the secret, and
whether a token an attacker holds is good. A malformed token or a bad
checksum reveals nothing (the format and the CRC are public), nor does an id
no token has (ids are sequential, not secret): both are refused without
argon2. A token used from outside its row's allowed networks is refused after
reading the row, whatever its secret and whether its grant is cached, so the
time says nothing about the secret. A secret that earlier checks settled as
wrong (``known.KnownSecrets``) is refused without argon2 too. Only then does
argon2 judge, and a suspect source (one that failed lately) waits for it in
its own lane (``throttle.Lanes``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime

from ..errors import InvalidToken, MalformedToken, NotFromHere, ProxyError
from ..store import TokenRecord, TokenStore
from ..store.lastaccessed import LastAccessed
from .cache import KeyedDigest, TTLCache
from .emails import OwnerEmails, could_be_email
from .grant import REFUSED_MESSAGE, Grant, grant_for, not_from_here
from .hashing import SecretHasher
from .identity import User
from .known import KnownSecrets, replaced_in_grace
from .throttle import FailureThrottle, Lanes, throttle_keys, too_many, user_key
from .tokens import ParsedToken, parse_token

Clock = Callable[[], int]
# The token owner as the upstream knows the owner's key now; None when it knows no such key.
OwnerOf = Callable[[TokenRecord], Awaitable[User | None]]

log = logging.getLogger(__name__)


def rejection(
    grant: Grant, username: str | None, now_ms: int, email: str = ""
) -> InvalidToken | None:
    """Why a verified token is refused now (expired, its grace over, or not the named user's:
    neither the owner's name nor ``email``, the owner's address); None if it is not."""
    if grant.valid_until is not None and now_ms >= grant.valid_until:
        at = datetime.fromtimestamp(grant.valid_until / 1000, tz=UTC)
        if grant.rotated:
            return InvalidToken(
                "this secret was replaced by a rotation and stopped working on "
                f"{at:%Y-%m-%d %H:%M} UTC; use the new one",
                reason="rotated",
            )
        return InvalidToken(
            f"the token expired on {at:%Y-%m-%d %H:%M} UTC; create a new one", reason="expired"
        )
    if username is not None and username != grant.record.owner_name:
        named = username.casefold()
        if named != grant.record.owner_name.casefold() and (not email or named != email):
            return InvalidToken(
                "the token does not belong to the user name given with it", reason="wrong_owner"
            )
    return None


def malformed(exc: MalformedToken) -> InvalidToken:
    return InvalidToken(str(exc), reason="checksum" if exc.checksum else "malformed")


# Token ids seen revoked, remembered so a refusal can say "revoked", not "unknown".
REVOKED_REMEMBERED = 10_000


class TokenVerifier:
    """Says which token a request carries and whether it is good, counting failures.

    Throttling never refuses a correct token. A verified token in the cache is
    accepted without looking at the throttle; any other is verified before the
    throttle decides anything, and only a failure becomes a 429. The argon2
    work a source can cause stays bounded: an address or user name gets one
    argon2 check at a time, and suspect ones (that failed within the window)
    all share ``suspect_checks`` of them (``Lanes``), on top of the hasher's
    global bound (503 ``Busy``), which they therefore never fill for everyone
    else.

    Concurrent checks of one token share a single argon2 verification (a
    flight, keyed by the token's digest), so a crowd of first uses costs one
    check; each request still reads the row, applies its own acceptance rules
    and counts its own failures.
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
        emails: OwnerEmails | None = None,
        owner_of: OwnerOf | None = None,
        suspect_checks: int = 1,
    ) -> None:
        self._throttle = throttle
        self._emails = emails
        self._owner_of = owner_of
        self._store = store
        self._hasher = hasher
        self._access = access
        self._clock = clock
        self._digest = KeyedDigest()
        self._cache: TTLCache[bytes, Grant] = TTLCache(cache_size, cache_seconds)
        self._known = KnownSecrets(cache_size, cache_seconds)
        self._lanes = Lanes(throttle, suspect_checks)
        self._flights: dict[bytes, asyncio.Task[Grant]] = {}
        # Bumped by every revocation: a check that began before one may have
        # read a token since deleted, so its answer is not cached.
        self._epoch = 0
        self._revoked_ids: dict[int, None] = {}  # insertion-ordered: the oldest go first
        # Verified-cache lookups answered, and those that had to ask the store (metrics).
        self.hits = 0
        self.misses = 0

    @property
    def throttle(self) -> FailureThrottle:
        return self._throttle

    def digest(self, token: str) -> bytes:
        """The key ``token`` is cached under (a keyed digest, never the token)."""
        return self._digest(token)

    def verify_cached(
        self, token: str, username: str | None, client: str, digest: bytes = b""
    ) -> Grant | None:
        """The grant of a token already verified and still good, without awaiting; None when
        the caller must await verify() (not cached, expired, not the named user's, or named
        by an e-mail address not yet known), which then does the failure accounting.
        ``client`` is the caller's address, kept as the token's ``lastAccessedFrom``;
        ``digest`` is ``digest(token)`` if the caller has it already."""
        grant = self._cache.get(digest or self._digest(token))
        if grant is None:
            return None
        email = self._email_for(grant, username)
        if email is None or self._accepted(grant, username, email, client) is not None:
            return None
        self.hits += 1
        return grant

    @property
    def cached(self) -> int:
        """Tokens in the verified cache."""
        return len(self._cache)

    async def verify(
        self,
        token: str,
        username: str | None = None,
        *,
        client: str | None = None,
        digest: bytes = b"",
    ) -> Grant:
        """The grant of a good token; raise InvalidToken or TooManyRequests otherwise.

        ``username`` (from Basic auth) must be the owner's name or e-mail
        address (as the upstream reports it), ignoring case.
        ``client`` is the caller's address, for throttling, the token's
        allowed networks (NotFromHere, answered like a bad token, in the time
        any secret for that token takes from there: one store read) and
        ``lastAccessedFrom``. Every use is recorded for
        ``lastAccessed``, every failure counted against the address and the
        user name; a failure while either is throttled is TooManyRequests,
        never a good token. ``digest`` is ``digest(token)`` if the caller has it already.
        """
        keys = throttle_keys(client, username)
        digest = digest or self._digest(token)
        try:
            grant = self._cache.get(digest)
            cached = grant is not None
            if grant is None:
                self.misses += 1
                grant = await self._check(token, digest, username, client, keys)
            else:
                self.hits += 1
            refused = None if client is None else not_from_here(grant, client)
            if refused is not None:
                if cached:
                    # Read the row, as the refusal of any other secret from here
                    # does (``_check``): a stolen token tried from elsewhere must
                    # not learn from the timing that it is good.
                    await self._store.get(grant.record.id)
                raise refused
            email = self._email_for(grant, username)
            if email is None:
                assert self._emails is not None
                email = await self._emails.of(grant.record)
            problem = self._accepted(grant, username, email, client or "")
            if problem is not None:
                raise problem
            return grant
        except (InvalidToken, NotFromHere) as exc:
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

    def _email_for(self, grant: Grant, username: str | None) -> str | None:
        """The owner's address to accept ``username`` as: "" when none is needed (no name,
        the owner's name, no ``@``), None when it must first be asked for."""
        # The common case first, in as few steps as possible: this runs on every request.
        if username is None or "@" not in username or self._emails is None:
            return ""
        if not could_be_email(username, grant.record.owner_name):
            return ""
        return self._emails.known(grant.record.owner_key)

    def _accepted(
        self, grant: Grant, username: str | None, email: str, client: str
    ) -> InvalidToken | None:
        """Record a use of a verified token and return None, or return why it is refused."""
        now = self._clock()
        problem = rejection(grant, username, now, email)
        if problem is None:
            self._access.record(grant.record.id, now, client)
        return problem

    async def _check(
        self,
        token: str,
        digest: bytes,
        username: str | None,
        client: str | None,
        keys: list[str],
    ) -> Grant:
        """Verify a token that is not in the cache, with argon2 only if nothing else can.

        Refused without argon2, in this order: a malformed token or a bad
        checksum; an id no token has (one store read); while ``username`` is
        throttled, a token that cannot be that user's; a use from outside the
        row's allowed networks, whatever the secret; a secret this worker has
        settled as wrong for the row. Then a check of the same token already
        under way is joined, at no cost. Otherwise the request waits for its
        lane (``Lanes``: its keys' turns, and a shared place if one of them
        is suspect), asks again what the row and the checks before it have
        settled (reading the row again if a revocation came meanwhile), and
        one flight runs argon2. The lane is held as long as the check runs,
        even if this request stops waiting (a client that hangs up cannot
        start a second).
        """
        try:
            parsed = parse_token(token)
        except MalformedToken as exc:
            raise malformed(exc) from exc
        epoch = self._epoch  # a revocation from here on: what this check learns is not kept
        record = await self._row(parsed.token_id)
        if username and user_key(username) in self._throttled(keys):
            await self._guard(record, username)
        self._refuse_settled(record, digest, client)
        flight = self._flights.get(digest)
        if flight is None:
            end_lane = await self._lanes.take(keys)
            try:
                if self._epoch != epoch:
                    # Revoked or changed while this waited: read the row afresh.
                    epoch = self._epoch
                    record = await self._row(parsed.token_id)
                # Settled by a check that had the lane before: verified, or refused.
                grant = self._cache.get(digest)
                if grant is None:
                    self._refuse_settled(record, digest, client)
            except BaseException:
                end_lane()
                raise
            if grant is not None:
                end_lane()
                return grant
            flight = self._flights.get(digest) or self._launch(parsed, record, digest, epoch, keys)
            flight.add_done_callback(lambda _: end_lane())
        # Shielded: one waiter giving up must not cancel the others' check.
        return await asyncio.shield(flight)

    async def _row(self, token_id: int) -> TokenRecord:
        record = await self._store.get(token_id)
        if record is None:
            raise self._unknown(token_id)
        return record

    def _refuse_settled(self, record: TokenRecord, digest: bytes, client: str | None) -> None:
        """Raise if the row decides without argon2: a use from outside its allowed
        networks (whatever the secret), or a secret settled as wrong (``KnownSecrets``)."""
        if client is not None and record.allowed_networks:
            refused = not_from_here(grant_for(record), client)
            if refused is not None:
                raise refused
        if self._known.wrong(record, digest, self._clock()):
            raise InvalidToken(REFUSED_MESSAGE, reason="unknown")

    async def _guard(self, record: TokenRecord, username: str) -> None:
        """While ``username`` is throttled, only a token of that user's is worth
        argon2's time: refuse anything else at once (it is counted as a failure)."""
        if record.owner_name.casefold() == username.casefold():
            return
        if (
            self._emails is not None
            and could_be_email(username, record.owner_name)
            and await self._emails.of(record) == username.casefold()
        ):
            return  # the owner's e-mail address, as the upstream reports it
        raise InvalidToken("the token is unknown or not the named user's", reason="wrong_owner")

    def _launch(
        self, parsed: ParsedToken, record: TokenRecord, digest: bytes, epoch: int, keys: list[str]
    ) -> asyncio.Task[Grant]:
        flight = asyncio.create_task(self._verify_uncached(parsed, record, digest, epoch, keys))
        self._flights[digest] = flight
        flight.add_done_callback(functools.partial(self._landed, digest))
        return flight

    def _landed(self, digest: bytes, flight: asyncio.Task[Grant]) -> None:
        if self._flights.get(digest) is flight:
            del self._flights[digest]
        if not flight.cancelled():
            # Every waiter may have given up; the outcome is theirs, not the loop's to report.
            flight.exception()

    async def _verify_uncached(
        self, parsed: ParsedToken, record: TokenRecord, digest: bytes, epoch: int, keys: list[str]
    ) -> Grant:
        """Check a token's secret against its row with argon2, and remember the verdict:
        the grant of a good token in the cache, the fact in ``KnownSecrets``. A refusal
        makes the launcher's ``keys`` suspect before its lane ends, so the check that
        waited for their turn already goes to the suspect lane."""
        now = self._clock()
        previous = replaced_in_grace(record, now)
        if await self._hasher.verify(record.secret_hash, parsed.secret):
            grant = grant_for(record)
            if epoch == self._epoch:
                self._known.verified(record, digest)
        elif previous is not None and await self._hasher.verify(previous, parsed.secret):
            grant = grant_for(record, rotated=True)
        else:
            if epoch == self._epoch:
                self._known.refused(record, digest, now)
            for key in keys:
                self._throttle.mark_suspect(key)
            raise InvalidToken(REFUSED_MESSAGE, reason="unknown")
        owner = await self._current_owner(record)
        if owner is not record:
            grant = grant_for(owner, rotated=grant.rotated)
        if epoch == self._epoch:
            self._cache.put(digest, grant)
        return grant

    async def _current_owner(self, record: TokenRecord) -> TokenRecord:
        """The record under the name the upstream gives its owner's key now.

        The trusted header carries a name, and names move: an admin renames a
        user, a newcomer later takes the old name. Asked once per verification
        (the verified cache holds the answer), never per request."""
        if self._owner_of is None:
            return record
        try:
            owner = await self._owner_of(record)
        except ProxyError as exc:
            # Nobody answers for the stored name (renamed, and not taken), or
            # the upstream is down: the name is asserted as before, and the
            # upstream, which knows no such user, refuses it.
            log.debug("owner of token %d not confirmed: %s", record.id, exc)
            return record
        if owner is None:
            log.warning(
                "token %d refused: its owner's user key %s no longer exists upstream",
                record.id,
                record.owner_key,
            )
            raise InvalidToken(REFUSED_MESSAGE, reason="unknown")
        if owner.name.casefold() == record.owner_name.casefold():
            return record
        log.warning(
            "token %d: its owner %s is now called %s upstream; the token speaks for that name",
            record.id,
            record.owner_key,
            owner.name,
        )
        return dataclasses.replace(record, owner_name=owner.name)

    def _unknown(self, token_id: int) -> InvalidToken:
        # The client hears the same either way; the log and metrics say which.
        return InvalidToken(
            REFUSED_MESSAGE, reason="revoked" if token_id in self._revoked_ids else "unknown"
        )

    def forget(self, token_ids: Iterable[int]) -> None:
        """Drop revoked, rotated or changed tokens from the cache, and what is known
        of their secrets, at once.

        Their pending ``lastAccessed`` times stay: a rotated or narrowed token
        still exists, and for a deleted one the write finds no row."""
        doomed = set(token_ids)
        for token_id in doomed:
            self._revoked_ids[token_id] = None
        while len(self._revoked_ids) > REVOKED_REMEMBERED:
            del self._revoked_ids[next(iter(self._revoked_ids))]
        if doomed:
            self._cache.discard_where(lambda grant: grant.record.id in doomed)
            self._known.forget(doomed)
            self._revoked()

    def forget_all(self) -> None:
        self._cache.clear()
        self._known.clear()
        self._revoked()

    def _revoked(self) -> None:
        # Checks under way may have read a revoked token: let them finish for
        # their own waiters, but cache nothing from them and let no one join.
        self._epoch += 1
        self._flights.clear()
