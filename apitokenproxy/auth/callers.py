"""Who calls the token API: a token, a password the upstream accepts, never anything else.

``Authenticator`` turns an accepted ``Authorization`` header into a
``Caller``: a token is checked by ``TokenVerifier``; a password is checked
by the upstream (``identity.py``) and the answer cached under a keyed
digest. Sysadmin rights are asked of the upstream on the caller's behalf.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ..config import AuthConfig
from ..errors import Unauthorized
from ..store import TokenRecord
from ..store.audit import Action, How
from .cache import KeyedDigest, TTLCache
from .credentials import BasicCredentials, BearerCredentials, read_credentials, token_in
from .identity import ActingAs, IdentityProvider, PasswordRejected, User
from .verifier import TokenVerifier

# The headers that make the upstream take a call as the named user's: the
# data path's own injection (``proxy.headers.Injection.identity``).
AsUser = Callable[[str], Iterable[tuple[str, str]]]


@dataclass(frozen=True)
class Caller:
    """An authenticated user of the management API, how they proved it, and
    where the call came from (for the audit trail)."""

    user: User
    acting: ActingAs
    token_id: int | None = None  # set when the caller used a token
    how: How = How.PASSWORD
    client: str = ""
    request_id: str = ""

    def action(self, at: int) -> Action:
        """What this caller's change at ``at`` (ms) is recorded as."""
        return Action(
            at=at,
            actor_key=self.user.key,
            actor_name=self.user.name,
            how=self.how,
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
        self._as_user = as_user

    def acting_for(self, user_name: str) -> ActingAs:
        """Headers that make the upstream treat a call as coming from ``user_name``."""
        return ActingAs(dict(self._as_user(user_name)))

    async def caller(
        self, authorization: Sequence[str], client: str | None = None, request_id: str = ""
    ) -> Caller:
        """The caller, carrying ``client`` and ``request_id`` for the audit trail."""
        credentials = read_credentials(authorization)
        attempt = token_in(credentials)
        if attempt is not None:
            record = await self._verifier.verify(attempt.token, attempt.username, client=client)
            return self._token_caller(record, client or "", request_id)
        match credentials:
            case None:
                raise Unauthorized("authentication required: use Basic user:password or a token")
            case BasicCredentials(username=username, password=password):
                user = await self._check_password(username, password)
                return Caller(
                    user,
                    ActingAs({"Authorization": authorization[0]}),
                    how=How.PASSWORD,
                    client=client or "",
                    request_id=request_id,
                )
            case BearerCredentials():
                raise Unauthorized("the Bearer token is not an apitokenproxy token")
            case _:
                raise Unauthorized(
                    f"the {credentials.scheme} scheme is not accepted here: use Basic or Bearer"
                )

    def _token_caller(self, record: TokenRecord, client: str, request_id: str) -> Caller:
        user = User(record.owner_key, record.owner_name)
        return Caller(
            user,
            self.acting_for(record.owner_name),
            token_id=record.id,
            how=How.TOKEN,
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
