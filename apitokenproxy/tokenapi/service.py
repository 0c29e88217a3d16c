"""What the management API does, apart from HTTP: the rules about tokens.

Each method takes an authenticated ``Caller`` and inputs that ``api.py`` has
already checked, and either returns records or raises a ``ProxyError``.
Permission rules, in one place:

- anyone may create, rename, list and delete their own tokens;
- a sysadmin may also create a token for another user key, delete anyone's
  token, delete all tokens of a user, filter all tokens and read the audit trail;
- someone else's token id is "not found" to a normal user, never "forbidden",
  so ids cannot be probed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..auth.callers import Authenticator, Caller
from ..auth.hashing import SecretHasher
from ..auth.identity import IdentityProvider
from ..auth.tokens import format_token, new_secret
from ..auth.verifier import TokenVerifier
from ..config import TokensConfig
from ..errors import Forbidden, NotFound
from ..store import NewToken, Page, TokenRecord, TokenStore
from ..store.audit import AuditPage, AuditQuery
from .validity import effective_months, valid_until


@dataclass(frozen=True)
class CreateRequest:
    description: str
    for_user_key: str | None = None
    months: int | None = None


@dataclass(frozen=True, repr=False)
class CreatedToken:
    record: TokenRecord
    plaintext: str

    def __repr__(self) -> str:
        return f"CreatedToken(record={self.record!r}, plaintext=<hidden>)"


class TokenService:
    def __init__(
        self,
        store: TokenStore,
        hasher: SecretHasher,
        authenticator: Authenticator,
        identity: IdentityProvider,
        verifier: TokenVerifier,
        config: TokensConfig,
        clock: Callable[[], int],
    ) -> None:
        self._store = store
        self._hasher = hasher
        self._auth = authenticator
        self._identity = identity
        self._verifier = verifier
        self.config = config  # replaced by a configuration reload
        self._clock = clock

    @property
    def max_description_length(self) -> int:
        return self.config.max_description_length

    async def create(self, caller: Caller, request: CreateRequest) -> CreatedToken:
        owner = caller.user
        if request.for_user_key is not None and request.for_user_key != caller.user.key:
            await self._require_sysadmin(caller, "create tokens for other users")
            found = await self._identity.find_user(request.for_user_key, caller.acting)
            if found is None:
                raise NotFound(f"no user has the user key {request.for_user_key!r}")
            owner = found
        months = effective_months(
            request.months, self.config.default_validity_months, self.config.max_validity_months
        )
        secret = new_secret()
        created = self._clock()
        record = await self._store.create(
            NewToken(
                owner_key=owner.key,
                owner_name=owner.name,
                description=request.description,
                secret_hash=await self._hasher.hash(secret),
                created=created,
                valid_until=valid_until(created, months),
                created_by_key=caller.user.key,
            ),
            caller.action(created),
        )
        return CreatedToken(record, format_token(record.id, secret))

    async def rename(self, caller: Caller, token_id: int, description: str) -> TokenRecord:
        await self._own_token(caller, token_id)
        record = await self._store.update_description(
            token_id, description, caller.action(self._clock())
        )
        if record is None:
            raise _not_found(token_id)
        return record

    async def list_own(self, caller: Caller) -> Sequence[TokenRecord]:
        return await self._store.list_owned(caller.user.key)

    async def delete(self, caller: Caller, token_id: int) -> None:
        record = await self._store.get(token_id)
        if record is None:
            raise _not_found(token_id)
        if record.owner_key != caller.user.key and not await self._auth.is_sysadmin(caller):
            raise _not_found(token_id)
        if not await self._store.delete(token_id, caller.action(self._clock())):
            raise _not_found(token_id)
        self._verifier.forget([token_id])

    async def delete_all_for(self, caller: Caller, user_key: str) -> int:
        await self._require_sysadmin(caller, "delete all tokens of a user")
        deleted = await self._store.delete_all_for(user_key, caller.action(self._clock()))
        self._verifier.forget(deleted)
        return len(deleted)

    async def find_by_expiry(
        self, caller: Caller, not_valid_after: int | None, offset: int, limit: int
    ) -> Page:
        await self._require_sysadmin(caller, "filter all tokens")
        return await self._store.find_by_expiry(not_valid_after, offset, limit)

    async def audit(self, caller: Caller, query: AuditQuery, offset: int, limit: int) -> AuditPage:
        await self._require_sysadmin(caller, "read the audit trail")
        return await self._store.audit_events(query, offset, limit)

    async def _own_token(self, caller: Caller, token_id: int) -> TokenRecord:
        record = await self._store.get(token_id)
        if record is None or record.owner_key != caller.user.key:
            raise _not_found(token_id)
        return record

    async def _require_sysadmin(self, caller: Caller, action: str) -> None:
        if not await self._auth.is_sysadmin(caller):
            raise Forbidden(f"only system administrators may {action}")


def _not_found(token_id: int) -> NotFound:
    return NotFound(f"you have no token with id {token_id}")
