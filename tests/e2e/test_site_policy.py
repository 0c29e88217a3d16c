"""The per-site token policy end to end, on both lanes and both stores: allowed
networks, who may hold tokens and for how long, token managers, the per-user cap,
and tokens that may not manage tokens."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from apitokenproxy.app import COMPONENTS, create_app
from apitokenproxy.reload import Reloader
from apitokenproxy.server import start_site
from apitokenproxy.tokenapi.validity import valid_until

from ..conftest import START_MS, MakeLive, MakeWorld, World
from ..fakes import basic, bearer
from .test_api import ADMIN, ALICE, API, BOB, assert_error, create
from .test_attacks import exchange

ISSUE = "/rest/api/2/issue/TEST-1"
# The test client is 127.0.0.1, believed as a load balancer in the network rows.
BEHIND_BALANCER = {"proxy": {"trusted_proxies": ["127.0.0.1/32"]}}
BUILD_NETWORKS = {"auth": {"allowed_networks": ["10.0.0.0/8", "2001:db8::/32"]}}


def via(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def token_from(world: World, address: str) -> str:
    resp = await world.client.post(
        f"{API}/user/token", json={"tokenDescription": "ci"}, headers={**ALICE, **via(address)}
    )
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["plainTextToken"])


# Allowed networks ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("forwarded_for", "allowed"),
    [
        ("10.1.2.3", True),
        ("2001:db8::7", True),
        ("192.0.2.1", False),
        ("2001:db9::1", False),
        # The client may prepend anything; the address the balancer saw decides.
        ("10.1.2.3, 192.0.2.9", False),
        ("192.0.2.9, 10.1.2.3", True),
    ],
)
async def test_tokens_and_passwords_only_from_allowed_networks_via_a_trusted_proxy(
    make_world: MakeWorld, forwarded_for: str, allowed: bool
) -> None:
    world = await make_world(config={**BUILD_NETWORKS, **BEHIND_BALANCER})
    token = await token_from(world, "10.9.9.9")
    for credentials in (bearer(token), basic("alice", token), ALICE):
        resp = await world.client.get(ISSUE, headers={**credentials, **via(forwarded_for)})
        body = await resp.json()
        if allowed:
            assert resp.status == 200, body
        else:
            assert_error(resp.status, body, 403, "not accepted from your address")
            assert not [r for r in world.upstream.received if r.path_qs == ISSUE]


async def test_sessions_and_anonymous_requests_are_not_restricted(make_world: MakeWorld) -> None:
    world = await make_world(config=BUILD_NETWORKS)
    for headers in ({}, {"Cookie": "JSESSIONID=abc"}, {"Authorization": "Bearer jira-pat-123"}):
        resp = await world.client.get(ISSUE, headers=headers)
        assert resp.status == 200, await resp.text()
    assert len([r for r in world.upstream.received if r.path_qs == ISSUE]) == 3


async def test_forwarded_for_from_an_untrusted_peer_is_not_believed(
    make_world: MakeWorld,
) -> None:
    world = await make_world(config=BUILD_NETWORKS)
    resp = await world.client.get(ISSUE, headers={**ALICE, **via("10.1.2.3")})
    assert_error(resp.status, await resp.json(), 403, "(127.0.0.1)")


async def test_the_token_api_refuses_logins_from_outside(make_world: MakeWorld) -> None:
    world = await make_world(config={**BUILD_NETWORKS, **BEHIND_BALANCER})
    token = await token_from(world, "10.0.0.1")
    for credentials in (ALICE, bearer(token)):
        resp = await world.client.get(
            f"{API}/user/token", headers={**credentials, **via("192.0.2.1")}
        )
        assert_error(resp.status, await resp.json(), 403, "(192.0.2.1)")
    resp = await world.client.get(f"{API}/user/token", headers={**ALICE, **via("10.0.0.1")})
    assert resp.status == 200


@pytest.mark.parametrize(
    ("networks", "allowed"), [(["::1/128"], True), (["10.0.0.0/8", "127.0.0.0/8"], False)]
)
async def test_ipv6_clients_directly(
    make_world: MakeWorld, networks: list[str], allowed: bool
) -> None:
    world = await make_world(config={"auth": {"allowed_networks": networks}})
    # The same configuration served on the IPv6 loopback.
    app = create_app(world.config, clock=world.clock)
    runner = await start_site(app, "::1", 0, access_log=False)
    try:
        port = runner.addresses[0][1]
        url = f"http://[::1]:{port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(url + ISSUE, headers=ALICE) as resp:
                assert resp.status == (200 if allowed else 403), await resp.text()
            async with session.get(url + ISSUE) as resp:
                assert resp.status == 200
    finally:
        await runner.cleanup()


async def test_a_reload_changes_networks_and_managers_at_once(
    make_world: MakeWorld, tmp_path: Path
) -> None:
    world = await make_world(config={"auth": {"allowed_networks": ["127.0.0.0/8"]}})
    token = (await create(world, ALICE, {"tokenDescription": "t"}))["plainTextToken"]
    assert (await world.client.get(ISSUE, headers=bearer(token))).status == 200
    path = tmp_path / "config.yaml"
    raw: dict[str, Any] = {
        "upstream": {"url": world.config.upstream.url},
        "store": {"url": world.config.store.url},
        "auth": {"allowed_networks": ["10.0.0.0/8"], "token_manager_groups": ["developers"]},
        "proxy": {"fast_path": world.config.proxy.fast_path},
        "logging": {"access_log": False},
    }
    resp = await world.client.get(f"{API}/user/tokensByFilter?notValidAfter=-1", headers=ALICE)
    assert resp.status == 403
    path.write_text(yaml.safe_dump(raw))
    components = world.client.app[COMPONENTS]
    assert Reloader(path, components.config, components.live, None).reload()
    resp = await world.client.get(ISSUE, headers=bearer(token))
    assert_error(resp.status, await resp.json(), 403, "not accepted")
    # alice became a token manager, from an allowed address.
    raw["auth"]["allowed_networks"] = ["127.0.0.0/8"]
    path.write_text(yaml.safe_dump(raw))
    assert Reloader(path, components.config, components.live, None).reload()
    resp = await world.client.get(f"{API}/user/tokensByFilter?notValidAfter=-1", headers=ALICE)
    assert resp.status == 200


# Who may hold tokens, and for how long ----------------------------------------------

GROUP_RULES = {
    "tokens": {
        "default_validity_months": 6,
        "max_validity_months": 12,
        "allowed_groups": ["jira-users", "jira-administrators"],
        "group_limits": [
            {"group": "jira-users", "max_validity_months": 3},
            {"group": "developers", "max_validity_months": 24},
            {"group": "jira-administrators", "max_validity_months": 0, "allow_never_expires": True},
        ],
    }
}


@pytest.mark.parametrize(
    ("auth", "months", "granted"),
    [
        # bob is in jira-users only: 3 months at most, the default capped too.
        (BOB, None, 3),
        (BOB, 12, 3),
        # alice is also a developer: the longer limit applies, beyond the site's 12.
        (ALICE, 18, 18),
        (ALICE, 36, 24),
        (ALICE, None, 6),
        # The admin's group has no limit at all.
        (ADMIN, 1200, 1200),
    ],
)
async def test_the_longest_limit_of_the_users_groups_applies(
    make_world: MakeWorld, auth: dict[str, str], months: int | None, granted: int
) -> None:
    world = await make_world(config=GROUP_RULES)
    body: dict[str, Any] = {"tokenDescription": "t"}
    if months is not None:
        body["tokenValidityTimeInMonths"] = months
    data = await create(world, auth, body)
    assert data["validUntil"] == valid_until(START_MS, granted)


async def test_never_expiring_tokens_only_for_groups_that_allow_them(
    make_world: MakeWorld,
) -> None:
    rules = {"tokens": {**GROUP_RULES["tokens"], "default_validity_months": 0,
                        "max_validity_months": 0}}  # fmt: skip
    world = await make_world(config=rules)
    assert (await create(world, ADMIN, {"tokenDescription": "t"}))["validUntil"] is None
    # alice's groups have finite limits: her default is capped to the longest, 24.
    data = await create(world, ALICE, {"tokenDescription": "t"})
    assert data["validUntil"] == valid_until(START_MS, 24)
    unlimited = {"tokens": {**rules["tokens"], "group_limits": [{"group": "developers"}]}}
    world = await make_world(config=unlimited)
    data = await create(world, ALICE, {"tokenDescription": "t"}, status=400)
    assert "never expire are not allowed" in data["message"]
    data = await create(world, ALICE, {"tokenDescription": "t", "tokenValidityTimeInMonths": 99})
    assert data["validUntil"] == valid_until(START_MS, 99)


async def test_only_members_of_the_allowed_groups_may_hold_tokens(make_world: MakeWorld) -> None:
    world = await make_world(config={"tokens": {"allowed_groups": ["developers"]}})
    await create(world, ALICE, {"tokenDescription": "t"})
    data = await create(world, BOB, {"tokenDescription": "t"}, status=403)
    assert "bob may not hold API tokens: only members of developers" in data["message"]
    # Nor may an admin make one for him.
    body = {"tokenDescription": "t", "tokenForUserKey": "JIRAUSER10105"}
    data = await create(world, ADMIN, body, status=403)
    assert "bob may not hold" in data["message"]


async def test_a_token_outlives_its_owners_membership(make_world: MakeWorld) -> None:
    """As documented: the group is checked at creation, not on every use."""
    world = await make_world(config={"tokens": {"allowed_groups": ["developers"]}})
    token = (await create(world, ALICE, {"tokenDescription": "t"}))["plainTextToken"]
    world.upstream.users = tuple(
        dataclasses.replace(u, groups=()) if u.name == "alice" else u for u in world.upstream.users
    )
    assert (await world.client.get(ISSUE, headers=bearer(token))).status == 200


async def test_groups_are_asked_once_and_cached(make_world: MakeWorld) -> None:
    world = await make_world(config={"tokens": {"allowed_groups": ["developers"]}})
    for _ in range(3):
        await create(world, ALICE, {"tokenDescription": "t"})
    asked = [r for r in world.upstream.received if "expand=groups" in r.path_qs]
    assert len(asked) == 1
    # Asked as alice herself, through the trusted header.
    assert ("X-Forwarded-User", "alice") in asked[0].headers


async def test_confluence_groups_come_from_memberof(make_world: MakeWorld) -> None:
    world = await make_world("confluence", config={"tokens": {"allowed_groups": ["ops-admins"]}})
    await create(world, BOB, {"tokenDescription": "t"})
    data = await create(world, ALICE, {"tokenDescription": "t"}, status=403)
    assert "only members of ops-admins" in data["message"]


# Token managers ------------------------------------------------------------------------

MANAGERS = {"auth": {"token_manager_groups": ["developers"]}}


async def test_token_managers_act_like_sysadmins_on_tokens(make_world: MakeWorld) -> None:
    world = await make_world(config=MANAGERS)
    bobs = await create(world, BOB, {"tokenDescription": "bob's"})
    # alice (a developer) lists every token, revokes bob's, makes one for him.
    resp = await world.client.get(f"{API}/user/tokensByFilter?notValidAfter=-1", headers=ALICE)
    assert resp.status == 200
    assert [t["id"] for t in (await resp.json())["content"]] == [bobs["id"]]
    resp = await world.client.delete(f"{API}/user/token/{bobs['id']}", headers=ALICE)
    assert resp.status == 204
    body = {"tokenDescription": "for bob", "tokenForUserKey": "JIRAUSER10105"}
    made = await create(world, ALICE, body)
    assert (made["tokenForUserKey"], made["tokenCreatedByUserKey"]) == (
        "JIRAUSER10105", "JIRAUSER10100")  # fmt: skip
    resp = await world.client.delete(f"{API}/user/token/deleteAllFor/JIRAUSER10105", headers=ALICE)
    assert await resp.json() == {"deletedTokens": 1}
    # bob is no manager: someone else's token stays "not found", the filter forbidden.
    alices = await create(world, ALICE, {"tokenDescription": "alice's"})
    resp = await world.client.delete(f"{API}/user/token/{alices['id']}", headers=BOB)
    assert resp.status == 404
    resp = await world.client.get(f"{API}/user/tokensByFilter?notValidAfter=-1", headers=BOB)
    assert_error(resp.status, await resp.json(), 403, "token managers")
    # A sysadmin's groups are never asked for: being one is enough.
    asked = [r for r in world.upstream.received if "expand=groups" in r.path_qs]
    resp = await world.client.get(f"{API}/user/tokensByFilter?notValidAfter=-1", headers=ADMIN)
    assert resp.status == 200
    assert [r for r in world.upstream.received if "expand=groups" in r.path_qs] == asked


async def test_without_manager_groups_only_sysadmins_manage(make_world: MakeWorld) -> None:
    world = await make_world()
    resp = await world.client.get(f"{API}/user/tokensByFilter?notValidAfter=-1", headers=ALICE)
    assert resp.status == 403
    # No group lookup is needed to decide that.
    assert not [r for r in world.upstream.received if "expand=groups" in r.path_qs]


# The per-user cap --------------------------------------------------------------------


async def test_the_per_user_cap_says_how_many_exist(make_world: MakeWorld) -> None:
    world = await make_world(config={"tokens": {"max_per_user": 2}})
    for _ in range(2):
        await create(world, ALICE, {"tokenDescription": "t"})
    data = await create(world, ALICE, {"tokenDescription": "t"}, status=400)
    assert "alice already has 2 API tokens and may hold at most 2" in data["message"]
    # Each user has a cap of their own, also when an admin creates for them.
    await create(world, BOB, {"tokenDescription": "t"})
    await create(world, ADMIN, {"tokenDescription": "t", "tokenForUserKey": "JIRAUSER10105"})
    body = {"tokenDescription": "t", "tokenForUserKey": "JIRAUSER10105"}
    data = await create(world, ADMIN, body, status=400)
    assert "bob already has 2" in data["message"]
    # Deleting one makes room.
    resp = await world.client.get(f"{API}/user/token", headers=ALICE)
    first = (await resp.json())[0]["id"]
    assert (await world.client.delete(f"{API}/user/token/{first}", headers=ALICE)).status == 204
    await create(world, ALICE, {"tokenDescription": "t"})


async def test_concurrent_creations_never_pass_the_cap(make_world: MakeWorld) -> None:
    world = await make_world(config={"tokens": {"max_per_user": 3}})

    async def one() -> int:
        resp = await world.client.post(
            f"{API}/user/token", json={"tokenDescription": "t"}, headers=ALICE
        )
        return resp.status

    statuses = await asyncio.gather(*(one() for _ in range(8)))
    assert sorted(statuses) == [200] * 3 + [400] * 5
    assert len(await world.client.app[COMPONENTS].store.list_owned("JIRAUSER10100")) == 3


# Tokens that may not manage tokens ---------------------------------------------------------


async def test_tokens_may_not_manage_tokens_when_the_site_says_so(make_world: MakeWorld) -> None:
    world = await make_world(config={"tokens": {"tokens_may_manage_tokens": False}})
    made = await create(world, ALICE, {"tokenDescription": "t"})
    token = bearer(made["plainTextToken"])
    data = await create(world, token, {"tokenDescription": "renewal"}, status=403)
    assert "API tokens may not create tokens" in data["message"]
    resp = await world.client.delete(f"{API}/user/token/{made['id']}", headers=token)
    assert_error(resp.status, await resp.json(), 403, "may not delete tokens")
    resp = await world.client.delete(f"{API}/user/token/deleteAllFor/JIRAUSER10100", headers=token)
    assert resp.status == 403
    # Listing and renaming stay open to the token; its password owner may do everything.
    assert (await world.client.get(f"{API}/user/token", headers=token)).status == 200
    resp = await world.client.patch(
        f"{API}/user/token/{made['id']}", json={"tokenDescription": "renamed"}, headers=token
    )
    assert resp.status == 200
    assert (
        await world.client.delete(f"{API}/user/token/{made['id']}", headers=ALICE)
    ).status == 204


async def test_tokens_manage_tokens_by_default(jira: World) -> None:
    made = await create(jira, ALICE, {"tokenDescription": "t"})
    token = bearer(made["plainTextToken"])
    renewed = await create(jira, token, {"tokenDescription": "renewal"})
    resp = await jira.client.delete(f"{API}/user/token/{made['id']}", headers=token)
    assert resp.status == 204
    assert renewed["tokenCreatedByUserKey"] == "JIRAUSER10100"
    # Without group rules, no group is ever asked for.
    assert not [r for r in jira.upstream.received if "expand=groups" in r.path_qs]


# A password in the query (Seraph's os_password): the same rules as in Basic ----------

QUERY_LOGINS = [
    ("os_username=alice&os_password=alice-pw", True),
    ("os_username=alice&os%5Fpassword=alice-pw", True),  # Tomcat decodes names
    ("os_username=alice&%6fs_passwor%64=alice-pw", True),
    ("os_username=alice&os_password", True),
    ("os_username=alice&OS_PASSWORD=alice-pw", False),  # Tomcat's names are case-sensitive
    ("jql=summary~os_password&q=os_password%3Dx", False),  # a value, not the name
]
QUERY_RULES = {
    "outside-networks": ({"auth": {"allowed_networks": ["10.0.0.0/8"]}}, 403),
    "passwords-disabled": ({"auth": {"allow_password_basic_auth": False}}, 401),
    "no-rule": ({}, 200),
}


@pytest.mark.parametrize("rule", list(QUERY_RULES))
@pytest.mark.parametrize(("query", "password"), QUERY_LOGINS)
async def test_a_password_in_the_query_obeys_the_password_rules(
    make_live: MakeLive, rule: str, query: str, password: bool
) -> None:
    config, refused_with = QUERY_RULES[rule]
    live = await make_live(config)  # the client, 127.0.0.1, is outside 10.0.0.0/8
    status, _, body = await exchange(
        live.port,
        f"GET {ISSUE}?{query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
    )
    expected = refused_with if password else 200
    assert status == expected, body
    reached = [r for r in live.upstream.received if r.path_qs.startswith(ISSUE)]
    assert len(reached) == (expected == 200)
