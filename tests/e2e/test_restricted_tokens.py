"""Issue 18, item 7: a token limited to a scope or to addresses cannot manage tokens.

From inside its networks, an address-limited token could PATCH its own
``allowedAddresses`` to ``[]`` (and then work from anywhere) and mint an
unrestricted 12-month write token. Each test goes through the real proxy, on
both lanes and both stores, presents the token each way the proxy reads one,
and judges by what the store holds afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ..conftest import MakeWorld, World
from ..fakes import SESSION_COOKIE, basic, bearer

API = "/rest/de.resolution.apitokenauth/latest"
ALICE = basic("alice", "alice-pw")
ADMIN = basic("admin", "admin-pw")
ALICE_KEY = "JIRAUSER10100"
# The test client connects from 127.0.0.1 (the audit trail shows it, below): the
# limited tokens are limited to exactly that address, so each call is from inside.
HERE = "127.0.0.1/32"

# How a client can present a token: each must meet the same rule.
Presented = Callable[[str, str], dict[str, str]]
PRESENTATIONS: dict[str, Presented] = {
    "bearer": lambda name, token: bearer(token),
    "basic-user-token": lambda name, token: basic(name, token),
    "basic-token-colon": lambda name, token: basic(token, ""),
}
LIMITS = {
    "addresses": {"allowedAddresses": [HERE]},
    "read": {"scope": "read"},
    "read-and-addresses": {"scope": "read", "allowedAddresses": [HERE]},
}


async def make_token(world: World, auth: dict[str, str], **extra: Any) -> dict[str, Any]:
    resp = await world.client.post(
        f"{API}/user/token", json={"tokenDescription": "t", **extra}, headers=auth
    )
    assert resp.status == 200, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def call(
    world: World, method: str, path: str, body: Any, auth: dict[str, str]
) -> tuple[int, dict[str, Any] | None]:
    resp = await world.client.request(method, API + path, json=body, headers=auth)
    data = await resp.json() if resp.status != 204 else None
    return resp.status, data


async def stored(world: World) -> list[tuple[Any, ...]]:
    """Every token as the store has it, apart from when it was last used."""
    resp = await world.client.get(f"{API}/user/tokensByFilter?notValidAfter=-1", headers=ADMIN)
    assert resp.status == 200
    return [
        (t["id"], t["tokenForUserKey"], t["description"], t.get("scope"),
         t.get("allowedAddresses"), t["validUntil"], t["created"])
        for t in (await resp.json())["content"]
    ]  # fmt: skip


async def audit_total(world: World) -> int:
    resp = await world.client.get(f"{API}/audit", headers=ADMIN)
    return int((await resp.json())["total"])


def management_calls(own: int, other: int) -> list[tuple[str, str, Any]]:
    """Every kind of call that makes, changes or removes a token, in an order an
    unlimited caller can run them all: ``own`` is the caller's token, ended last."""
    return [
        ("PATCH", f"/user/token/{own}", {"allowedAddresses": []}),  # the issue's attack
        ("POST", "/user/token", {"tokenDescription": "spare", "tokenValidityTimeInMonths": 12}),
        ("POST", "/user/token", {"tokenDescription": "for alice", "tokenForUserKey": ALICE_KEY}),
        ("PATCH", f"/user/token/{own}", {"tokenDescription": "renamed"}),
        ("PATCH", f"/user/token/{other}", {"allowedAddresses": ["10.0.0.0/8"]}),
        ("PATCH", f"/user/token/{other}", {"scope": "read"}),
        ("POST", f"/user/token/{other}/rotate", {"gracePeriodSeconds": 0}),
        ("DELETE", f"/user/token/{other}", None),
        ("DELETE", f"/user/token/deleteAllFor/{ALICE_KEY}", None),
        ("DELETE", f"/user/token/{own}", None),
    ]


@pytest.mark.parametrize("presented", sorted(PRESENTATIONS))
@pytest.mark.parametrize("limit", sorted(LIMITS))
async def test_a_limited_token_cannot_manage_tokens(
    jira: World, limit: str, presented: str
) -> None:
    """The limited token is a sysadmin's, so nothing but its limit stands in the way:
    not the owner check, not the token-manager check of deleteAllFor."""
    await make_token(jira, ALICE)
    other = await make_token(jira, ADMIN)
    limited = await make_token(jira, ADMIN, **LIMITS[limit])
    auth = PRESENTATIONS[presented]("admin", limited["plainTextToken"])
    # Inside its network: the token works, and the client is where the limit says.
    itself = await jira.client.get(f"{API}/user/token/current", headers=auth)
    assert itself.status == 200, await itself.text()
    trail = await (await jira.client.get(f"{API}/audit", headers=ADMIN)).json()
    assert {e["clientAddress"] for e in trail["content"]} == {"127.0.0.1"}
    before, events = await stored(jira), await audit_total(jira)

    calls = [
        *management_calls(limited["id"], other["id"]),
        ("PATCH", f"/user/token/{limited['id']}", {"scope": "read"}),
        ("POST", f"/user/token/{limited['id']}/rotate", {"gracePeriodSeconds": 0}),
    ]
    for method, path, body in calls:
        status, data = await call(jira, method, path, body, auth)
        assert status == 403, (method, path, body, data)
        assert data is not None
        assert "password" in data["message"] and "browser" in data["message"], data["message"]
        assert ("read scope" if "read" in limit else "allowed addresses") in data["message"]

    assert await stored(jira) == before
    assert await audit_total(jira) == events
    # Not rotated (a grace of 0 would have ended this secret) and still limited.
    itself = await jira.client.get(f"{API}/user/token/current", headers=auth)
    assert itself.status == 200
    assert (await itself.json())["allowedAddresses"] == LIMITS[limit].get("allowedAddresses", [])
    # Reading stays allowed, as its owner may.
    listing = await jira.client.get(f"{API}/user/token", headers=auth)
    assert listing.status == 200
    assert len(await listing.json()) == 2
    page = await jira.client.get(f"{API}/user/tokensByFilter?notValidAfter=-1", headers=auth)
    assert page.status == 200


async def test_an_address_limited_token_from_outside_its_network_is_refused(
    jira: World,
) -> None:
    """The limit the tests above rely on is real: the same client is outside 10.0.0.0/8."""
    outside = await make_token(jira, ALICE, allowedAddresses=["10.0.0.0/8"])
    resp = await jira.client.get(
        f"{API}/user/token/current", headers=bearer(outside["plainTextToken"])
    )
    assert resp.status == 401


async def test_the_issues_attack_leaves_the_limit_in_place(make_world: MakeWorld) -> None:
    """The attack as issue 18 reports it: alice's build token, limited to the build
    network and used from there (X-Forwarded-For from a trusted balancer), clears its
    own limit and mints an unlimited 12-month write token; then works from anywhere."""
    world = await make_world(config={"proxy": {"trusted_proxies": ["127.0.0.1/32"]}})
    build = {"X-Forwarded-For": "192.0.2.7"}
    made = await make_token(world, {**ALICE, **build}, allowedAddresses=["192.0.2.0/24"])
    token = bearer(made["plainTextToken"])
    assert (
        await world.client.get(f"{API}/user/token/current", headers={**token, **build})
    ).status == 200

    cleared = await world.client.patch(
        f"{API}/user/token/{made['id']}", json={"allowedAddresses": []}, headers={**token, **build}
    )
    assert cleared.status == 403, await cleared.text()
    minted = await world.client.post(
        f"{API}/user/token",
        json={"tokenDescription": "mine now", "tokenValidityTimeInMonths": 12},
        headers={**token, **build},
    )
    assert minted.status == 403, await minted.text()

    elsewhere = {"X-Forwarded-For": "198.51.100.7"}
    resp = await world.client.get(f"{API}/user/token", headers={**token, **elsewhere})
    assert resp.status == 401  # still limited to the build network
    listing = await (await world.client.get(f"{API}/user/token", headers=ALICE)).json()
    assert [(t["id"], t["allowedAddresses"]) for t in listing] == [(made["id"], ["192.0.2.0/24"])]


def caller_auth(world: World, kind: str, token: str, name: str) -> dict[str, str]:
    match kind:
        case "token":
            return bearer(token)
        case "password":
            return basic(name, f"{name}-pw")
        case _:
            session = world.upstream.sign_in(name)
            return {"Cookie": f"{SESSION_COOKIE}={session}", "X-Atlassian-Token": "no-check"}


@pytest.mark.parametrize("kind", ["token", "password", "session"])
async def test_unlimited_tokens_passwords_and_sessions_still_manage_tokens(
    jira: World, kind: str
) -> None:
    mine = await make_token(jira, ADMIN)
    other = await make_token(jira, ADMIN)
    await make_token(jira, ALICE)
    auth = caller_auth(jira, kind, mine["plainTextToken"], "admin")
    for method, path, body in management_calls(mine["id"], other["id"]):
        status, data = await call(jira, method, path, body, auth)
        deletes_one = method == "DELETE" and "deleteAllFor" not in path
        assert status == (204 if deletes_one else 200), (method, path, body, data)
    # All that is left is the spare: the rest deleted, alice's by deleteAllFor.
    assert [(row[1], row[2]) for row in await stored(jira)] == [("admin", "spare")]
