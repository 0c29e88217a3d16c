"""What the management API does, apart from HTTP: the rules about tokens.

Each method takes an authenticated ``Caller`` and inputs that ``inputs.py`` has
already checked, and either returns records or raises a ``ProxyError``.
Permission rules, in one place:

- anyone may create, rename, list and delete their own tokens, narrow their
  scope (never widen it), change their allowed networks, rotate them, and a
  token may ask about itself;
- a sysadmin, or a member of ``auth.token_manager_groups``, may also create
  a token for another user key, delete anyone's token, delete all tokens of
  a user and filter all tokens;
- only a sysadmin may read the audit trail;
- someone else's token id is "not found" to a normal user, never "forbidden",
  so ids cannot be probed;
- what a caller who logged in with a token may change is ``management_refusal``,
  a table of its own: a limited token (read scope, or allowed addresses) may
  read but manage nothing, so it can neither lift its own limits nor make a
  token without them; the secret a rotation replaced, and any token while
  ``tokens.tokens_may_manage_tokens`` is false, may rename and narrow but
  not create, rotate, move or delete tokens;
- who may own a token and for how long is ``policy.py``, applied by
  ``TokenMaker``, the one creation path the command line shares; a new token
  past ``tokens.max_per_user`` is refused with the number its owner holds.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from ..auth.callers import Authenticator, Caller
from ..auth.grant import Grant
from ..auth.hashing import SecretHasher
from ..auth.identity import IdentityProvider, User
from ..auth.tokens import format_token, new_secret
from ..auth.verifier import TokenVerifier
from ..config import TokensConfig
from ..errors import BadRequest, Forbidden, NotFound, OwnerAtLimit
from ..live import Live
from ..store import NewToken, Page, TokenRecord, TokenStore
from ..store.audit import Action, AuditPage, AuditQuery
from ..store.base import SCOPES
from .policy import check_may_hold, granted_months, needs_groups
from .validity import valid_until

log = logging.getLogger(__name__)

# A rotation's grace when the caller names none (capped by the admin's maximum).
DEFAULT_GRACE_SECONDS = 86_400


@dataclass(frozen=True)
class CreateRequest:
    description: str
    for_user_key: str | None = None
    months: int | None = None
    scope: str = "write"
    allowed_networks: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyChange:
    """A PATCH: each field None keeps what the token has."""

    description: str | None = None
    scope: str | None = None
    allowed_networks: tuple[str, ...] | None = None


@dataclass(frozen=True, repr=False)
class CreatedToken:
    record: TokenRecord
    plaintext: str

    def __repr__(self) -> str:
        return f"CreatedToken(record={self.record!r}, plaintext=<hidden>)"


def grace_seconds(requested: int | None, maximum: int) -> int:
    """The grace a rotation gets: as asked (absent: one day), never beyond the maximum."""
    return min(DEFAULT_GRACE_SECONDS if requested is None else requested, maximum)


def widens(current: str, requested: str) -> bool:
    """Whether moving from scope ``current`` to ``requested`` would widen it."""
    return SCOPES.index(requested) > SCOPES.index(current)


class Act(Enum):
    """What a call does to tokens, as ``management_refusal`` judges it; the value
    completes "may not ..." in a refusal."""

    CREATE = "create tokens"
    RENAME = "rename tokens"
    NARROW = "change the scope of tokens"
    MOVE = "change where tokens may be used from"
    ROTATE = "rotate tokens"
    DELETE = "delete tokens"


# What a replaced secret, and a token where tokens may not manage tokens, may
# still do: changes that can only take away from what a token can do.
HARMLESS = frozenset({Act.RENAME, Act.NARROW})

# Where a token that may not manage tokens sends its holder instead.
MANAGE_WITH = "to manage tokens, log in with your password or use your browser session"


def management_refusal(
    grant: Grant | None, act: Act, *, tokens_may_manage_tokens: bool
) -> Forbidden | None:
    """Why a caller who presented ``grant`` (None: a password or a browser session)
    may not ``act``, or None if it may. Reading is never refused here."""
    if grant is None:
        return None
    if grant.restricted:
        # Anything it could change or make would be a way out of its own limits.
        return Forbidden(
            f"{_limits(grant)}, and a limited token may read the token API but not "
            f"{act.value}, so that it can never lift its limits: {MANAGE_WITH}"
        )
    if act in HARMLESS:
        return None
    if grant.rotated:
        # The grace is for updating where the secret is used, not for its
        # holder to rotate the owner's new secret away or mint a spare.
        return Forbidden(
            f"this secret was replaced by a rotation: it may still be used until its grace "
            f"ends, but not to {act.value}; use the new secret"
        )
    if not tokens_may_manage_tokens:
        return Forbidden(f"API tokens may not {act.value} on this site: {MANAGE_WITH}")
    return None


def _limits(grant: Grant) -> str:
    limits = []
    if grant.read_only:
        limits.append("has the read scope")
    if grant.networks:
        limits.append("may be used only from its allowed addresses")
    return "this token " + " and ".join(limits)


# The owner's upstream groups, asked as the owner (the trusted header).
GroupsOf = Callable[[User], Awaitable[frozenset[str]]]


class TokenMaker:
    """Makes a token: the one creation path of the token API and the command line.

    Whoever asks has already been allowed to make a token for ``owner``, and
    ``request`` has passed ``inputs.parse_create`` (description, validity,
    scope, addresses). This applies the site's policy for the owner
    (``tokens.allowed_groups`` and ``group_limits``, asking ``groups_of`` only
    when they are set; the validity rules; ``tokens.max_per_user``) and writes
    the token with its audit event, in one transaction, as ``action``'s actor's.
    """

    def __init__(self, store: TokenStore, hasher: SecretHasher, groups_of: GroupsOf) -> None:
        self._store = store
        self._hasher = hasher
        self._groups_of = groups_of

    async def create(
        self, owner: User, request: CreateRequest, config: TokensConfig, action: Action
    ) -> CreatedToken:
        groups: frozenset[str] = frozenset()
        if needs_groups(config):
            groups = await self._groups_of(owner)
            check_may_hold(owner.name, groups, config)
        months = granted_months(request.months, groups, config)
        secret = new_secret()
        token = NewToken(
            owner_key=owner.key,
            owner_name=owner.name,
            description=request.description,
            secret_hash=await self._hasher.hash(secret),
            created=action.at,
            valid_until=valid_until(action.at, months),
            created_by_key=action.actor_key,
            scope=request.scope,
            allowed_networks=request.allowed_networks,
        )
        try:
            record = await self._store.create(token, action, limit=config.max_per_user)
        except OwnerAtLimit as exc:
            raise BadRequest(
                f"{owner.name} already has {exc.count} API tokens and may hold at most "
                f"{config.max_per_user}: delete one before creating another"
            ) from exc
        return CreatedToken(record, format_token(record.id, secret))


class TokenService:
    def __init__(
        self,
        store: TokenStore,
        hasher: SecretHasher,
        authenticator: Authenticator,
        identity: IdentityProvider,
        verifier: TokenVerifier,
        live: Live,
        clock: Callable[[], int],
    ) -> None:
        self._store = store
        self._hasher = hasher
        self._auth = authenticator
        self._identity = identity
        self._verifier = verifier
        self._live = live
        self._clock = clock
        self._maker = TokenMaker(store, hasher, authenticator.groups)

    @property
    def config(self) -> TokensConfig:
        """The token rules now (``tokens.*``; a reload changes them)."""
        return self._live.now.tokens

    @property
    def max_description_length(self) -> int:
        return self.config.max_description_length

    async def create(self, caller: Caller, request: CreateRequest) -> CreatedToken:
        config = self.config
        self._permit(caller, Act.CREATE)
        owner = caller.user
        if request.for_user_key is not None and request.for_user_key != caller.user.key:
            await self._require_manager(caller, "create tokens for other users")
            found = await self._identity.find_user(request.for_user_key, caller.acting)
            if found is None:
                raise NotFound(f"no user has the user key {request.for_user_key!r}")
            owner = found
            if not await self._auth.is_sysadmin(caller) and await self._auth.user_is_sysadmin(
                owner
            ):
                # The creator sees the secret: a token manager must not become a sysadmin.
                raise Forbidden(
                    f"{owner.name} is a system administrator: only system administrators "
                    "may create tokens for them"
                )
        return await self._maker.create(owner, request, config, caller.action(self._clock()))

    async def rename(self, caller: Caller, token_id: int, description: str) -> TokenRecord:
        self._permit(caller, Act.RENAME)
        await self._own_token(caller, token_id)
        record = await self._store.update_description(
            token_id, description, caller.action(self._clock())
        )
        if record is None:
            raise _not_found(token_id)
        return record

    async def change(self, caller: Caller, token_id: int, change: PolicyChange) -> TokenRecord:
        """A PATCH: the description alone is the seed's rename; a scope may only narrow."""
        if change.scope is None and change.allowed_networks is None:
            assert change.description is not None
            return await self.rename(caller, token_id, change.description)
        self._permit(caller, Act.NARROW if change.allowed_networks is None else Act.MOVE)
        current = await self._own_token(caller, token_id)
        if change.scope is not None and widens(current.scope, change.scope):
            raise BadRequest(
                f"a token's scope can be narrowed, never widened: token {token_id} has the "
                f"{current.scope} scope; create a new token for {change.scope} access"
            )
        record = await self._store.update_policy(
            token_id,
            caller.action(self._clock()),
            description=change.description,
            scope=change.scope,
            allowed_networks=change.allowed_networks,
        )
        if record is None:
            raise _not_found(token_id)
        # This process at once; the others when the store announces it.
        self._verifier.forget([token_id])
        return record

    async def rotate(
        self, caller: Caller, token_id: int, requested_grace: int | None
    ) -> CreatedToken:
        """A new secret for the same token; the current one keeps working for the grace."""
        self._permit(caller, Act.ROTATE)
        await self._own_token(caller, token_id)
        grace = grace_seconds(requested_grace, self.config.max_rotation_grace_seconds)
        secret = new_secret()
        now = self._clock()
        record = await self._store.rotate(
            token_id,
            await self._hasher.hash(secret),
            now + grace * 1000 if grace else None,
            caller.action(now),
        )
        if record is None:
            raise _not_found(token_id)
        self._verifier.forget([token_id])
        log.info(
            "token %d of %s rotated by %s; the replaced secret works for %d s more",
            token_id,
            record.owner_key,
            caller.user.key,
            grace,
        )
        return CreatedToken(record, format_token(record.id, secret))

    async def current(self, caller: Caller) -> tuple[TokenRecord, Grant]:
        """The token the caller authenticated with, as the store has it now, and its grant."""
        if caller.grant is None:
            raise BadRequest(
                "GET .../user/token/current describes the token that calls it: "
                "authenticate with that token, not a password"
            )
        record = await self._store.get(caller.grant.record.id)
        if record is None:
            raise _not_found(caller.grant.record.id)
        return record, caller.grant

    async def list_own(self, caller: Caller) -> Sequence[TokenRecord]:
        return await self._store.list_owned(caller.user.key)

    async def delete(self, caller: Caller, token_id: int) -> None:
        self._permit(caller, Act.DELETE)
        record = await self._store.get(token_id)
        if record is None:
            raise _not_found(token_id)
        if record.owner_key != caller.user.key and not await self._auth.may_manage(caller):
            raise _not_found(token_id)
        if not await self._store.delete(token_id, caller.action(self._clock())):
            raise _not_found(token_id)
        self._verifier.forget([token_id])

    async def delete_all_for(self, caller: Caller, user_key: str) -> int:
        self._permit(caller, Act.DELETE)
        await self._require_manager(caller, "delete all tokens of a user")
        deleted = await self._store.delete_all_for(user_key, caller.action(self._clock()))
        self._verifier.forget(deleted)
        return len(deleted)

    async def find_by_expiry(
        self,
        caller: Caller,
        not_valid_after: int | None,
        offset: int,
        limit: int,
        *,
        owner_key: str | None = None,
        description: str | None = None,
    ) -> Page:
        await self._require_manager(caller, "filter all tokens")
        return await self._store.find_by_expiry(
            not_valid_after, offset, limit, owner_key=owner_key, description=description
        )

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

    async def _require_manager(self, caller: Caller, action: str) -> None:
        if not await self._auth.may_manage(caller):
            raise Forbidden(f"only system administrators and token managers may {action}")

    def _permit(self, caller: Caller, act: Act) -> None:
        refusal = management_refusal(
            caller.grant, act, tokens_may_manage_tokens=self.config.tokens_may_manage_tokens
        )
        if refusal is not None:
            raise refusal


def _not_found(token_id: int) -> NotFound:
    return NotFound(f"you have no token with id {token_id}")
