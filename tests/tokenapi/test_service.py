"""The token rules: a rotation's grace, which scope changes widen, what a caller
who logged in with a token may do to tokens, and who may do what to whose tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from apitokenproxy.auth.callers import Caller
from apitokenproxy.auth.grant import Grant, grant_for
from apitokenproxy.auth.identity import ActingAs, User
from apitokenproxy.config import AuthConfig
from apitokenproxy.errors import ProxyError
from apitokenproxy.store import TokenRecord, TokenStore
from apitokenproxy.store.audit import AuditQuery
from apitokenproxy.tokenapi.service import (
    HARMLESS,
    MANAGE_WITH,
    Act,
    CreateRequest,
    PolicyChange,
    TokenService,
    grace_seconds,
    management_refusal,
    widens,
)

from ..conftest import START_MS
from ..fakes import FakeUser
from ..services import BY_CLI, services


@pytest.mark.parametrize(
    ("requested", "maximum", "grace"),
    [
        (None, 86_400, 86_400),  # absent: one day
        (None, 600, 600),  # ...or the maximum, if less
        (None, 7 * 86_400, 86_400),
        (60, 86_400, 60),
        (7 * 86_400, 86_400, 86_400),  # capped
        (7 * 86_400, 7 * 86_400, 7 * 86_400),
        (0, 86_400, 0),
        (60, 0, 0),  # the admin allows none
    ],
)
def test_grace(requested: int | None, maximum: int, grace: int) -> None:
    assert grace_seconds(requested, maximum) == grace


@pytest.mark.parametrize(
    ("current", "requested", "widened"),
    [("write", "read", False), ("read", "read", False), ("write", "write", False),
     ("read", "write", True)],
)  # fmt: skip
def test_a_scope_only_narrows(current: str, requested: str, widened: bool) -> None:
    assert widens(current, requested) is widened


def grant(limits: str = "", *, rotated: bool = False) -> Grant:
    record = TokenRecord(
        7, "key", "alice", "d", "h", START_MS, None, 0, "key",
        scope="read" if "read" in limits else "write",
        allowed_networks=("10.0.0.0/8",) if "addresses" in limits else (),
        previous_hash="old" if rotated else None,
        previous_until=START_MS + 1000 if rotated else None,
    )  # fmt: skip
    return grant_for(record, rotated=rotated)


EVERY = frozenset(Act)
NONE: frozenset[Act] = frozenset()


@pytest.mark.parametrize(
    ("caller", "may_manage", "allowed", "because"),
    [
        # A password or a browser session: this rule refuses nothing.
        (None, True, EVERY, ""),
        (None, False, EVERY, ""),
        # An unlimited token: everything, unless the site says tokens may not.
        (grant(), True, EVERY, ""),
        (grant(), False, HARMLESS, "API tokens may not"),
        # The secret a rotation replaced: only what takes away.
        (grant(rotated=True), True, HARMLESS, "replaced by a rotation"),
        (grant(rotated=True), False, HARMLESS, "replaced by a rotation"),
        # A limited token: nothing at all, renames and narrowing included (issue 18, item 7).
        (grant("read"), True, NONE, "this token has the read scope, and a limited token"),
        (grant("addresses"), True, NONE, "may be used only from its allowed addresses"),
        (grant("read addresses"), True, NONE,
         "has the read scope and may be used only from its allowed addresses"),
        (grant("addresses"), False, NONE, "allowed addresses"),
        (grant("addresses", rotated=True), True, NONE, "allowed addresses"),
    ],
    ids=["password", "password-site-off", "token", "token-site-off", "replaced",
         "replaced-site-off", "read", "addresses", "read-and-addresses", "addresses-site-off",
         "addresses-replaced"],
)  # fmt: skip
def test_who_may_manage_tokens(
    caller: Grant | None, may_manage: bool, allowed: frozenset[Act], because: str
) -> None:
    for act in Act:
        refusal = management_refusal(caller, act, tokens_may_manage_tokens=may_manage)
        if act in allowed:
            assert refusal is None, act
            continue
        assert refusal is not None, act
        assert refusal.status == 403
        assert because in refusal.message and act.value in refusal.message
        # Each refusal says what would do it instead.
        assert ("use the new secret" if "rotation" in because else MANAGE_WITH) in refusal.message


# Who may do what to whose tokens: TokenService on a real SQLite store, the
# upstream's answers (who is a sysadmin, who is in which group) from a directory.

MANAGERS = "token-managers"
USERS = (
    FakeUser("key-alice", "alice", "alice-pw"),
    FakeUser("key-bob", "bob", "bob-pw"),
    FakeUser("key-carol", "carol", "carol-pw", groups=(MANAGERS,)),  # a token manager
    FakeUser("key-admin", "admin", "admin-pw", sysadmin=True),
)
ALICE, BOB, CAROL, ADMIN = (User(u.key, u.name) for u in USERS)


@dataclass
class Site:
    service: TokenService
    store: TokenStore
    target: TokenRecord  # the token the table's acts are done to: alice's, unlimited
    tokens: dict[str, TokenRecord]  # the tokens callers log in with, by owner and kind


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    async with services(
        f"sqlite:///{tmp_path / 'tokens.db'}", USERS, AuthConfig(token_manager_groups=(MANAGERS,))
    ) as built:
        target, _ = await built.token("alice", "target")
        tokens = {
            "alice": (await built.token("alice", "alice's own"))[0],
            "alice-read": (await built.token("alice", "alice's read", scope="read"))[0],
            "admin-read": (await built.token("admin", "admin's read", scope="read"))[0],
        }
        replaced, _ = await built.token("alice", "alice's rotated")
        rotated = await built.store.rotate(replaced.id, "plain$new", START_MS + 1, BY_CLI)
        assert rotated is not None
        tokens["alice-replaced"] = rotated
        yield Site(built.service, built.store, target, tokens)


def caller_of(site: Site, who: str) -> Caller:
    """``who`` is ``user/method``, the method a password, a session or a token kind."""
    name, _, method = who.partition("/")
    user = next(u for u in (ALICE, BOB, CAROL, ADMIN) if u.name == name)
    acting = ActingAs({"X-Forwarded-User": user.name})
    if method in ("password", "session"):
        return Caller(user, acting, method="session" if method == "session" else "password")
    kind = name if method == "token" else f"{name}-{method.removesuffix('-token')}"
    record = site.tokens[kind]
    grant = grant_for(record, rotated=method == "replaced-token")
    return Caller(user, acting, token_id=record.id, grant=grant, method="token")


async def do(site: Site, caller: Caller, act: str) -> None:
    """Do ``act`` as ``caller``, and check that it did what it says."""
    service, target = site.service, site.target
    match act:
        case "list":
            listed = await service.list_own(caller)
            assert {r.owner_key for r in listed} <= {caller.user.key}
            assert (target.id in {r.id for r in listed}) is (caller.user == ALICE)
        case "create":
            created = await service.create(caller, CreateRequest("mine"))
            assert created.record.owner_key == caller.user.key
        case "create-for-alice" | "create-for-admin":
            owner = ALICE if act == "create-for-alice" else ADMIN
            created = await service.create(caller, CreateRequest("yours", owner.key))
            assert created.record.owner_key == owner.key
            assert created.record.created_by_key == caller.user.key
        case "rename":
            renamed = await service.change(caller, target.id, PolicyChange(description="new"))
            assert renamed.description == "new"
        case "narrow":
            narrowed = await service.change(caller, target.id, PolicyChange(scope="read"))
            assert narrowed.scope == "read"
        case "delete":
            await service.delete(caller, target.id)
            assert await site.store.get(target.id) is None
        case "delete-all-for-alice":
            assert await service.delete_all_for(caller, ALICE.key) == 4
            assert await site.store.list_owned(ALICE.key) == []
        case "filter":
            page = await service.find_by_expiry(caller, None, 0, 50)
            assert target.id in {r.id for r in page.items}
        case "audit":
            audit = await service.audit(caller, AuditQuery(), 0, 50)
            assert audit.total > 0
        case _:
            raise AssertionError(act)


ACTS = ("list", "create", "create-for-alice", "create-for-admin", "rename", "narrow",
        "delete", "delete-all-for-alice", "filter", "audit")  # fmt: skip
OK = 200

# Each caller's outcome for each act, in ACTS' order: 200 done, else the status refused with.
# The target is alice's unlimited token.
PERMISSIONS = {
    #                            list create alice admin rename narrow delete all filter audit
    "alice/password":           (OK,  OK,    OK,   403,  OK,    OK,    OK,    403, 403,   403),
    "alice/session":            (OK,  OK,    OK,   403,  OK,    OK,    OK,    403, 403,   403),
    "alice/token":              (OK,  OK,    OK,   403,  OK,    OK,    OK,    403, 403,   403),
    # A replaced secret may only take away; a limited token may only read.
    "alice/replaced-token":     (OK,  403,   403,  403,  OK,    OK,    403,   403, 403,   403),
    "alice/read-token":         (OK,  403,   403,  403,  403,   403,   403,   403, 403,   403),
    # Another user's token is "not found", never "forbidden": ids cannot be probed.
    "bob/password":             (OK,  OK,    403,  403,  404,   404,   404,   403, 403,   403),
    # A token manager deletes and filters anyone's, but renames only its own, and
    # makes no token a sysadmin holds (its creator sees the secret).
    "carol/password":           (OK,  OK,    OK,   403,  404,   404,   OK,    OK,  OK,    403),
    "admin/password":           (OK,  OK,    OK,   OK,   404,   404,   OK,    OK,  OK,    OK),
    "admin/session":            (OK,  OK,    OK,   OK,   404,   404,   OK,    OK,  OK,    OK),
    # A sysadmin's read token reads everything and changes nothing.
    "admin/read-token":         (OK,  403,   403,  403,  403,   403,   403,   403, OK,    OK),
}  # fmt: skip


@pytest.mark.parametrize(
    ("who", "act", "outcome"),
    [
        (who, act, outcome)
        for who, row in PERMISSIONS.items()
        for act, outcome in zip(ACTS, row, strict=True)
    ],
)
async def test_who_may_do_what_to_whose_tokens(
    site: Site, who: str, act: str, outcome: int
) -> None:
    caller = caller_of(site, who)
    if outcome == OK:
        await do(site, caller, act)
        return
    with pytest.raises(ProxyError) as refused:
        await do(site, caller, act)
    assert refused.value.status == outcome, refused.value.message
    # A refusal changes nothing.
    assert await site.store.get(site.target.id) == site.target
