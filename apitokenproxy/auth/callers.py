"""Who calls the token API: a token, a password or a session the upstream accepts.

``Authenticator`` turns an accepted ``Authorization`` header into a
``Caller``: a token is checked by ``TokenVerifier``; a password is checked
by the upstream (``identity.py``) and the answer cached under a keyed
digest. With no ``Authorization`` header, the upstream's session cookie is
asked about (``sessions.py``); such callers must also pass the CSRF rule
(``csrf.py``) to change anything. Sysadmin rights and group memberships are
asked of the upstream on the caller's behalf and cached as long as a password
is. Token and password callers from outside ``auth.allowed_networks`` are
refused (403); sessions are not (the upstream decided who they are).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from ..config import AuthConfig
from ..errors import PasswordRejected, Unauthorized
from ..live import Live
from ..store.audit import Action, How
from .cache import KeyedDigest, TTLCache
from .credentials import BasicCredentials, BearerCredentials, read_credentials, token_in
from .grant import Grant, enforce
from .identity import ActingAs, IdentityProvider, User
from .networks import AllowedNetworks
from .sessions import SessionSignIn
from .verifier import TokenVerifier

# The headers that make the upstream take a call as the named user's: the
# data path's own injection (``proxy.headers.Injection.identity``).
AsUser = Callable[[str], Iterable[tuple[str, str]]]

# How a caller proved who it is: a password checked by the upstream, one of
# our tokens, or the upstream's browser session cookie.
Method = Literal["password", "token", "session"]

NO_CREDENTIALS = "authentication required: use Basic user:password or a token"


@dataclass(frozen=True)
class Caller:
    """An authenticated user of the management API, how they proved it, and
    where the call came from (for the audit trail)."""

    user: User
    acting: ActingAs
    token_id: int | None = None  # set when the caller used a token
    grant: Grant | None = None  # likewise: the token's policy, and its secret's deadline
    method: Method = "password"  # how the caller authenticated, as the access log says it
    client: str = ""
    request_id: str = ""

    def action(self, at: int) -> Action:
        """What this caller's change at ``at`` (ms) is recorded as."""
        return Action(
            at=at,
            actor_key=self.user.key,
            actor_name=self.user.name,
            how=How(self.method),
            client=self.client,
            request_id=self.request_id,
        )


class Authenticator:
    """Turns the Authorization header of a management call into a Caller."""

    def __init__(
        self,
        verifier: TokenVerifier,
        identity: IdentityProvider,
        config: AuthConfig,
        *,
        as_user: AsUser,
        live: Live | None = None,
    ) -> None:
        """``live`` holds the allowed networks and the token manager groups."""
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
        self._groups: TTLCache[str, frozenset[str]] = TTLCache(
            config.token_cache_size, config.password_cache_seconds
        )
        self._as_user = as_user
        self._live = live or Live()
        self.networks = AllowedNetworks(self._live)
        self.sessions = SessionSignIn(
            identity, cache_seconds=config.session_cache_seconds, cache_size=config.token_cache_size
        )

    def acting_for(self, user_name: str) -> ActingAs:
        """Headers that make the upstream treat a call as coming from ``user_name``."""
        return ActingAs(dict(self._as_user(user_name)))

    async def caller(
        self,
        authorization: Sequence[str],
        client: str,
        method: str,
        cookie: str | None = None,
        request_id: str = "",
    ) -> Caller:
        """The caller these credentials name; ``cookie`` (the request's ``Cookie``
        header) is consulted only when there is no ``Authorization`` header. A
        token's policy (``grant.enforce``) applies to the token API too, so a
        read-scoped token can only read, and only from its allowed networks.
        The caller carries ``client`` and ``request_id`` for the audit trail."""
        credentials = read_credentials(authorization)
        if isinstance(credentials, BasicCredentials | BearerCredentials):
            self.networks.check(client)
        attempt = token_in(credentials)
        if attempt is not None:
            grant = await self._verifier.verify(attempt.token, attempt.username, client=client)
            enforce(grant, method, client)
            return self._token_caller(grant, client, request_id)
        match credentials:
            case None if cookie:
                return await self.session_caller(cookie, client, request_id)
            case None:
                raise Unauthorized(NO_CREDENTIALS, reason="missing")
            case BasicCredentials(username=username, password=password):
                user = await self._check_password(username, password)
                return Caller(
                    user,
                    ActingAs({"Authorization": authorization[0]}),
                    client=client,
                    request_id=request_id,
                )
            case BearerCredentials():
                raise Unauthorized(
                    "the Bearer token is not an apitokenproxy token", reason="unknown"
                )
            case _:
                raise Unauthorized(
                    f"the {credentials.scheme} scheme is not accepted here: use Basic or Bearer",
                    reason="scheme",
                )

    async def session_caller(self, cookie: str, client: str = "", request_id: str = "") -> Caller:
        """The signed-in user of an upstream session; Unauthorized if none."""
        user = await self.sessions.user(cookie)
        # Later calls on the user's behalf go as the token callers' do, with
        # the trusted user header: the cookie itself is never kept.
        return Caller(
            user,
            self.acting_for(user.name),
            method="session",
            client=client,
            request_id=request_id,
        )

    def _token_caller(self, grant: Grant, client: str, request_id: str) -> Caller:
        record = grant.record
        user = User(record.owner_key, record.owner_name)
        return Caller(
            user,
            self.acting_for(record.owner_name),
            token_id=record.id,
            grant=grant,
            method="token",
            client=client,
            request_id=request_id,
        )

    async def _check_password(self, username: str, password: str) -> User:
        key = self._digest(username, password)
        user = self._passwords.get(key)
        if user is None:
            try:
                user = await self._identity.check_password(username, password)
            except PasswordRejected as exc:
                raise Unauthorized(exc.reason, reason="password_rejected") from exc
            self._passwords.put(key, user)
        return user

    async def is_sysadmin(self, caller: Caller) -> bool:
        return await self.user_is_sysadmin(caller.user, caller.acting)

    async def user_is_sysadmin(self, user: User, acting: ActingAs | None = None) -> bool:
        """Whether ``user`` is a sysadmin, asked as ``acting`` (default: as the user,
        through the trusted header); cached like a password."""
        if user.key in self._admin_keys:
            return True
        answer = self._sysadmins.get(user.key)
        if answer is None:
            answer = await self._identity.is_sysadmin(user, acting or self.acting_for(user.name))
            self._sysadmins.put(user.key, answer)
        return answer

    async def groups(self, user: User) -> frozenset[str]:
        """The user's upstream groups, asked as the user (the trusted header)."""
        answer = self._groups.get(user.key)
        if answer is None:
            answer = await self._identity.groups(user, self.acting_for(user.name))
            self._groups.put(user.key, answer)
        return answer

    async def may_manage(self, caller: Caller) -> bool:
        """Whether the caller may manage every user's tokens: a sysadmin or a token manager."""
        if await self.is_sysadmin(caller):
            return True
        managers = self._live.now.manager_groups
        return bool(managers) and bool(await self.groups(caller.user) & managers)
