"""Deciding who is calling: tokens checked locally, passwords by the upstream.

``TokenVerifier`` answers "which token is this, and is it good?" from the
store, with a bounded cache of verified tokens so that a token already seen
costs neither a query nor argon2. ``Authenticator`` turns any accepted
``Authorization`` header into a ``Caller`` for the management API.

Cache keys are keyed BLAKE2b digests under a key made at start-up, so the
plaintext of a token or password is never held as a key.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from .access import AccessLog
from .cache import TTLCache
from .config import AuthConfig
from .credentials import (
    BasicCredentials,
    BearerCredentials,
    Credentials,
    MalformedCredentials,
    parse_authorization,
    token_in,
)
from .errors import TooManyRequests, Unauthorized
from .hashing import SecretHasher
from .identity import ActingAs, IdentityProvider, PasswordRejected, User
from .store import TokenRecord, TokenStore
from .throttle import FailureThrottle
from .tokens import MalformedToken, parse_token

Clock = Callable[[], int]


class InvalidToken(Unauthorized):
    """A token that is malformed, unknown, wrong, expired or not the named user's."""

    code = "invalid_token"


def read_credentials(authorization: Sequence[str]) -> Credentials | None:
    """The request's credentials; a header that is ours to read but broken is a 401."""
    try:
        return parse_authorization(authorization)
    except MalformedCredentials as exc:
        raise Unauthorized(str(exc)) from exc


class _UserThrottled(InvalidToken):
    """A failed attempt for a throttled user name; answered with 429."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Caller:
    """An authenticated user of the management API."""

    user: User
    acting: ActingAs
    token_id: int | None = None  # set when the caller used a token


class KeyedDigest:
    """A keyed BLAKE2b MAC under a per-process random key: cache keys that reveal nothing.

    BLAKE2b's keyed mode is a MAC by design, and one call where HMAC needs
    two hash passes; this sits on every request's hot path.
    """

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def __call__(self, *parts: str) -> bytes:
        message = "\x00".join(parts).encode("utf-8", "surrogatepass")
        return hashlib.blake2b(message, key=self._key, digest_size=32).digest()


class TokenVerifier:
    def __init__(
        self,
        store: TokenStore,
        hasher: SecretHasher,
        access: AccessLog,
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
        self._dummy_hash: str | None = None

    async def verify(
        self, token: str, username: str | None = None, *, client: str | None = None
    ) -> TokenRecord:
        """The record of a good token; raise InvalidToken or TooManyRequests otherwise.

        ``username`` (from Basic auth) must match the owner, ignoring case.
        ``client`` is the caller's address, for throttling. Every use is
        recorded for ``lastAccessed``.
        """
        address_key = f"address {client}" if client else None
        user_key = f"user {username.casefold()}" if username else None
        wait = self._throttle.retry_after(address_key) if address_key else None
        if wait is not None:
            raise TooManyRequests(
                f"too many failed token attempts from {client}; retry in {wait} s",
                retry_after=wait,
            )
        try:
            return self._accept(await self._lookup(token, username, user_key), username)
        except InvalidToken as exc:
            for key in (address_key, user_key):
                if key is not None:
                    await self._throttle.record_failure(key)
            if isinstance(exc, _UserThrottled):
                raise TooManyRequests(exc.message, retry_after=exc.retry_after) from exc
            raise

    async def _lookup(self, token: str, username: str | None, user_key: str | None) -> TokenRecord:
        key = self._digest(token)
        record = self._cache.get(key)
        if record is None:
            user_wait = self._throttle.retry_after(user_key) if user_key else None
            guard = (username, user_wait) if username and user_wait else None
            record = await self._verify_uncached(token, guard)
            self._cache.put(key, record)
        return record

    def _accept(self, record: TokenRecord, username: str | None) -> TokenRecord:
        now = self._clock()
        if record.expired(now):
            expired_at = datetime.fromtimestamp((record.valid_until or 0) / 1000, tz=UTC)
            raise InvalidToken(
                f"the token expired on {expired_at:%Y-%m-%d %H:%M} UTC; create a new one"
            )
        if username is not None and username.casefold() != record.owner_name.casefold():
            raise InvalidToken("the token does not belong to the user name given with it")
        self._access.record(record.id, now)
        return record

    async def _verify_uncached(
        self, token: str, guard: tuple[str, int] | None = None
    ) -> TokenRecord:
        """Check a token against the store.

        ``guard`` (user name, seconds left) is set while that user name is
        throttled: then only a token of that user's is worth argon2's time;
        anything else is refused at once, and counted as a failure.
        """
        try:
            parsed = parse_token(token)
        except MalformedToken as exc:
            # Same argon2 time as any other refusal: the answer's timing tells
            # nothing, not even whether the checksum held.
            await self._hasher.verify(await self._dummy(), token)
            raise InvalidToken(str(exc)) from exc
        record = await self._store.get(parsed.token_id)
        if guard is not None and (
            record is None or record.owner_name.casefold() != guard[0].casefold()
        ):
            raise _UserThrottled(
                f"too many failed token attempts for {guard[0]}; retry in {guard[1]} s",
                retry_after=guard[1],
            )
        if record is None:
            # Spend the same argon2 time as for a real id, so response times
            # do not tell which token ids exist.
            await self._hasher.verify(await self._dummy(), parsed.secret)
            raise InvalidToken("the token is unknown or has been revoked")
        if not await self._hasher.verify(record.secret_hash, parsed.secret):
            raise InvalidToken("the token is unknown or has been revoked")
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

    def forget_all(self) -> None:
        self._cache.clear()


class Authenticator:
    """Turns the Authorization header of a management call into a Caller."""

    def __init__(
        self,
        verifier: TokenVerifier,
        identity: IdentityProvider,
        config: AuthConfig,
        *,
        user_header: str,
        shared_secret_header: str = "",
        shared_secret: str = "",
    ) -> None:
        self._verifier = verifier
        self._identity = identity
        self._admin_keys = frozenset(config.admin_user_keys)
        self._digest = KeyedDigest()
        self._passwords: TTLCache[bytes, User] = TTLCache(
            config.token_cache_size, config.password_cache_seconds
        )
        self._sysadmins: TTLCache[str, bool] = TTLCache(
            config.token_cache_size, config.password_cache_seconds
        )
        self._user_header = user_header
        self._secret_headers = {shared_secret_header: shared_secret} if shared_secret else {}

    def acting_for(self, user_name: str) -> ActingAs:
        """Headers that make the upstream treat a call as coming from ``user_name``."""
        return ActingAs({self._user_header: user_name, **self._secret_headers})

    async def caller(self, authorization: Sequence[str], client: str | None = None) -> Caller:
        credentials = read_credentials(authorization)
        attempt = token_in(credentials)
        if attempt is not None:
            record = await self._verifier.verify(attempt.token, attempt.username, client=client)
            return self._token_caller(record)
        match credentials:
            case None:
                raise Unauthorized("authentication required: use Basic user:password or a token")
            case BasicCredentials(username=username, password=password):
                user = await self._check_password(username, password)
                return Caller(user, ActingAs({"Authorization": authorization[0]}))
            case BearerCredentials():
                raise Unauthorized("the Bearer token is not an apitokenproxy token")
            case _:
                raise Unauthorized(
                    f"the {credentials.scheme} scheme is not accepted here: use Basic or Bearer"
                )

    def _token_caller(self, record: TokenRecord) -> Caller:
        user = User(record.owner_key, record.owner_name)
        return Caller(user, self.acting_for(record.owner_name), token_id=record.id)

    async def _check_password(self, username: str, password: str) -> User:
        key = self._digest(username, password)
        user = self._passwords.get(key)
        if user is None:
            try:
                user = await self._identity.check_password(username, password)
            except PasswordRejected as exc:
                raise Unauthorized(exc.reason) from exc
            self._passwords.put(key, user)
        return user

    async def is_sysadmin(self, caller: Caller) -> bool:
        if caller.user.key in self._admin_keys:
            return True
        answer = self._sysadmins.get(caller.user.key)
        if answer is None:
            answer = await self._identity.is_sysadmin(caller.user, caller.acting)
            self._sysadmins.put(caller.user.key, answer)
        return answer
