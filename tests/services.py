"""The token API's objects on a real store, with the upstream's answers from a directory.

For unit tests of ``Authenticator``, ``TokenService`` and the routes: the
real objects, built as ``components.py`` builds them, except that argon2 is a
plain hasher and the upstream's REST API is ``FakeDirectory``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

from apitokenproxy.auth.callers import Authenticator
from apitokenproxy.auth.hashing import SecretHasher
from apitokenproxy.auth.identity import ActingAs, User
from apitokenproxy.auth.throttle import FailureThrottle
from apitokenproxy.auth.tokens import format_token
from apitokenproxy.auth.verifier import TokenVerifier
from apitokenproxy.config import AuthConfig, ThrottleConfig, TokensConfig
from apitokenproxy.errors import PasswordRejected
from apitokenproxy.live import Live, Settings
from apitokenproxy.networks import parse_networks
from apitokenproxy.store import NewToken, TokenRecord, TokenStore, opened
from apitokenproxy.store.audit import Action, How
from apitokenproxy.store.lastaccessed import LastAccessed
from apitokenproxy.tokenapi.service import TokenService

from .conftest import START_MS, FakeClock
from .fakes import USER_HEADER, FakeUser


class FakeDirectory:
    """An ``IdentityProvider`` that knows ``users`` (their passwords, sysadmin flags
    and groups) and the sessions ``sign_in`` made, and counts what it is asked."""

    def __init__(self, users: Sequence[FakeUser]) -> None:
        self.users = {u.key: u for u in users}
        self.sessions: dict[str, FakeUser] = {}
        self.asked: list[str] = []

    def user(self, name: str) -> User:
        found = next(u for u in self.users.values() if u.name == name)
        return User(found.key, found.name)

    def sign_in(self, name: str) -> str:
        """The ``Cookie`` header of a new session of ``name``."""
        cookie = f"JSESSIONID=session-of-{name}"
        self.sessions[cookie] = next(u for u in self.users.values() if u.name == name)
        return cookie

    async def check_password(self, username: str, password: str) -> User:
        self.asked.append(f"password {username}")
        found = next((u for u in self.users.values() if u.name == username), None)
        if found is None or found.password != password:
            raise PasswordRejected("the upstream refused the user name or password")
        return self.user(found.name)

    async def session_user(self, cookie: str) -> User | None:
        self.asked.append(f"session {cookie}")
        found = self.sessions.get(cookie)
        return None if found is None else self.user(found.name)

    async def is_sysadmin(self, user: User, acting: ActingAs) -> bool:
        self.asked.append(f"sysadmin {user.name}")
        return self.users[user.key].sysadmin

    async def find_user(self, key: str, acting: ActingAs) -> User | None:
        found = self.users.get(key)
        return None if found is None else self.user(found.name)

    async def groups(self, user: User, acting: ActingAs) -> frozenset[str]:
        self.asked.append(f"groups {user.name}")
        return frozenset(self.users[user.key].groups)

    async def email(self, acting: ActingAs) -> str | None:
        return None


class PlainHasher:
    """Stands in for argon2: the "hash" is the secret, marked."""

    async def hash(self, secret: str) -> str:
        return f"plain${secret}"

    async def verify(self, stored_hash: str, secret: str) -> bool:
        return stored_hash == f"plain${secret}"


BY_CLI = Action(at=START_MS, actor_key="cli", actor_name="cli", how=How.CLI)
SECRET = "S" * 32


@dataclass
class Services:
    store: TokenStore
    directory: FakeDirectory
    verifier: TokenVerifier
    authenticator: Authenticator
    service: TokenService
    clock: FakeClock
    live: Live  # what a reload would swap

    async def token(
        self, name: str, description: str = "token", scope: str = "write"
    ) -> tuple[TokenRecord, str]:
        """A token of the user ``name``, written as the command line would: its
        record and its plaintext."""
        user = self.directory.user(name)
        new = NewToken(
            user.key, user.name, description, f"plain${SECRET}", START_MS, None, "cli", scope=scope
        )
        record = await self.store.create(new, BY_CLI)
        return record, format_token(record.id, SECRET)


@asynccontextmanager
async def services(
    store_url: str,
    users: Sequence[FakeUser],
    auth: AuthConfig | None = None,
    tokens: TokensConfig | None = None,
) -> AsyncIterator[Services]:
    auth = auth or AuthConfig()
    async with opened(store_url) as store:
        clock = FakeClock()
        hasher = cast(SecretHasher, PlainHasher())
        directory = FakeDirectory(users)
        live = Live(
            Settings(
                throttle=ThrottleConfig(10, 60, 1000),
                tokens=tokens or TokensConfig(),
                allowed_networks=parse_networks(auth.allowed_networks),
                manager_groups=frozenset(auth.token_manager_groups),
            )
        )
        verifier = TokenVerifier(
            store, hasher, LastAccessed(store, flush_seconds=10), clock,
            FailureThrottle(live), cache_seconds=300, cache_size=100,
        )  # fmt: skip
        authenticator = Authenticator(
            verifier, directory, auth, as_user=lambda name: [(USER_HEADER, name)], live=live
        )
        service = TokenService(store, hasher, authenticator, directory, verifier, live, clock)
        yield Services(store, directory, verifier, authenticator, service, clock, live)
