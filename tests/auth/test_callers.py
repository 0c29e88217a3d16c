"""Authenticator: which caller an Authorization header or a session cookie names,
where token and password logins are accepted from, and who may manage tokens."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from apitokenproxy.auth.callers import Caller
from apitokenproxy.auth.identity import ActingAs
from apitokenproxy.config import AuthConfig
from apitokenproxy.errors import Forbidden, ProxyError, Unauthorized

from ..fakes import USER_HEADER, FakeUser
from ..services import Services, services

USERS = (
    FakeUser("key-alice", "alice", "alice-pw", groups=("developers",)),
    FakeUser("key-bob", "bob", "bob-pw", groups=("token-managers",)),
    FakeUser("key-carol", "carol", "carol-pw"),
    FakeUser("key-admin", "admin", "admin-pw", sysadmin=True),
)
INSIDE = "10.1.2.3"
OUTSIDE = "203.0.113.9"


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Services]:
    auth = AuthConfig(
        allowed_networks=("10.0.0.0/8",),
        token_manager_groups=("token-managers",),
        admin_user_keys=("key-carol",),
    )
    async with services(f"sqlite:///{tmp_path / 'tokens.db'}", USERS, auth) as built:
        yield built


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# (Authorization header, how the caller proved it, who: or the refusal's status and reason)
# "TOKEN" stands for alice's token, "SESSION" for a cookie of alice's session;
# "Basic user:password" is sent base64-encoded.
CASES = [
    ("Basic alice:alice-pw", None, "password", "alice"),
    ("Bearer TOKEN", None, "token", "alice"),
    ("Basic alice:TOKEN", None, "token", "alice"),
    ("Basic TOKEN:", None, "token", "alice"),  # the token as the user name
    (None, "SESSION", "session", "alice"),
    # An Authorization header wins over a cookie: the session is not asked.
    ("Basic alice:alice-pw", "JSESSIONID=nobody", "password", "alice"),
    (None, None, 401, "missing"),
    # sessions.py names no reason of its own: Unauthorized's default.
    (None, "JSESSIONID=nobody", 401, "malformed"),
    ("Basic alice:wrong", None, 401, "password_rejected"),
    ("Basic nobody:pw", None, 401, "password_rejected"),
    ("Bearer not-a-token", None, 401, "unknown"),
    ("Digest username=alice", None, 401, "scheme"),
    ("Basic !!!", None, 401, "malformed"),
]


async def token_of_alice(rig: Services) -> tuple[int, str]:
    record, plaintext = await rig.token("alice")
    return record.id, plaintext


@pytest.mark.parametrize(("authorization", "cookie", "method", "who"), CASES)
async def test_who_is_calling(
    rig: Services, authorization: str | None, cookie: str | None, method: str | int, who: str
) -> None:
    token_id, plaintext = await token_of_alice(rig)
    headers = []
    if authorization is not None:
        scheme, _, value = authorization.replace("TOKEN", plaintext).partition(" ")
        user, colon, password = value.partition(":")
        headers = [basic(user, password) if scheme == "Basic" and colon else f"{scheme} {value}"]
    if cookie == "SESSION":
        cookie = rig.directory.sign_in("alice")
    call = rig.authenticator.caller(headers, INSIDE, "GET", cookie=cookie, request_id="r-1")
    if isinstance(method, int):
        with pytest.raises(Unauthorized) as refused:
            await call
        assert refused.value.status == method
        assert refused.value.reason == who
        return
    caller = await call
    assert (caller.user.name, caller.method) == (who, method)
    assert (caller.client, caller.request_id) == (INSIDE, "r-1")
    if method == "token":
        assert caller.token_id == token_id
        assert caller.grant is not None and caller.grant.record.id == token_id
    else:
        assert caller.token_id is None and caller.grant is None
    # A password caller's later calls carry its own header; the others go as the
    # user through the trusted header, so neither a token nor a cookie is passed on.
    expected = {"Authorization": headers[0]} if method == "password" else {USER_HEADER: who}
    assert caller.acting == ActingAs(expected)


@pytest.mark.parametrize(
    ("credentials", "client", "refused"),
    [
        ("password", INSIDE, None),
        ("password", OUTSIDE, 403),
        ("token", INSIDE, None),
        ("token", OUTSIDE, 403),
        ("token", "::ffff:10.1.2.3", None),  # an IPv4-mapped address is its IPv4 one
        # The upstream decided who a session is: the networks do not apply to it.
        ("session", OUTSIDE, None),
        # Refused before the header is even read: a bad password from outside is 403.
        ("bad password", OUTSIDE, 403),
    ],
)
async def test_token_and_password_logins_only_from_the_allowed_networks(
    rig: Services, credentials: str, client: str, refused: int | None
) -> None:
    _, plaintext = await token_of_alice(rig)
    authorization = {
        "password": [basic("alice", "alice-pw")],
        "bad password": [basic("alice", "wrong")],
        "token": [f"Bearer {plaintext}"],
        "session": [],
    }[credentials]
    cookie = rig.directory.sign_in("alice") if credentials == "session" else None
    call = rig.authenticator.caller(authorization, client, "GET", cookie=cookie)
    if refused is None:
        assert (await call).user.name == "alice"
        return
    with pytest.raises(Forbidden) as refusal:
        await call
    assert refusal.value.status == refused
    assert rig.directory.asked == []  # the upstream was not asked


@pytest.mark.parametrize(
    ("scope", "method", "refused"),
    [("write", "POST", None), ("read", "GET", None), ("read", "HEAD", None),
     ("read", "POST", 403), ("read", "DELETE", 403)],
)  # fmt: skip
async def test_a_tokens_scope_applies_to_the_token_api(
    rig: Services, scope: str, method: str, refused: int | None
) -> None:
    _, plaintext = await rig.token("alice", scope=scope)
    call = rig.authenticator.caller([f"Bearer {plaintext}"], INSIDE, method)
    if refused is None:
        assert (await call).method == "token"
        return
    with pytest.raises(ProxyError) as refusal:
        await call
    assert refusal.value.status == refused


async def test_a_password_the_upstream_accepted_is_asked_about_once(rig: Services) -> None:
    for _ in range(3):
        caller = await rig.authenticator.caller([basic("alice", "alice-pw")], INSIDE, "GET")
        assert caller.user.name == "alice"
    assert rig.directory.asked == ["password alice"]
    # Another password is another question, and a refused one is not kept.
    for _ in range(2):
        with pytest.raises(Unauthorized):
            await rig.authenticator.caller([basic("alice", "other")], INSIDE, "GET")
    assert rig.directory.asked == ["password alice"] + ["password alice"] * 2


def password_caller(rig: Services, name: str) -> Caller:
    return Caller(rig.directory.user(name), rig.authenticator.acting_for(name))


@pytest.mark.parametrize(
    ("name", "sysadmin", "manages"),
    [
        ("alice", False, False),  # in a group, but not a managers' one
        ("bob", False, True),  # in auth.token_manager_groups
        ("carol", True, True),  # in auth.admin_user_keys: the upstream is not asked
        ("admin", True, True),  # the upstream says so
    ],
)
async def test_who_may_manage_every_users_tokens(
    rig: Services, name: str, sysadmin: bool, manages: bool
) -> None:
    caller = password_caller(rig, name)
    assert await rig.authenticator.is_sysadmin(caller) is sysadmin
    assert await rig.authenticator.may_manage(caller) is manages
    # Asked once each, then cached like a password.
    assert await rig.authenticator.may_manage(caller) is manages
    asked = rig.directory.asked
    assert asked.count(f"sysadmin {name}") == (0 if name == "carol" else 1)
    assert asked.count(f"groups {name}") == (1 if name in ("alice", "bob") else 0)


async def test_without_manager_groups_only_sysadmins_manage(rig: Services) -> None:
    rig.live.swap(dataclasses.replace(rig.live.now, manager_groups=frozenset()))  # a reload
    assert await rig.authenticator.may_manage(password_caller(rig, "bob")) is False
    assert "groups bob" not in rig.directory.asked  # nothing to be a member of
