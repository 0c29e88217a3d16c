"""An outsider's attacks on the token policy, session sign-in and the pages (issues 10 and 13).

Each test is one attack through the real proxy, on both lanes (and both stores
where the store is involved), judged by what the fake upstream received and
what the store holds afterwards. Rows that held stay as regression tests; the
ones that fail show a hole that is still open.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import statistics
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict

from apitokenproxy.app import COMPONENTS, create_app
from apitokenproxy.auth.tokens import format_token
from apitokenproxy.config import config_from_dict

from ..conftest import (
    LANES,
    FakeClock,
    GatewayTestServer,
    Live,
    MakeLive,
    MakeWorld,
    World,
    base_config,
    deep_merge,
)
from ..fakes import (
    JIRA_USERS,
    SESSION_COOKIE,
    USER_HEADER,
    FakeUpstream,
    FakeUser,
    basic,
    bearer,
)
from ..peers.nginx import free_port, running_nginx
from .test_attacks import exchange
from .test_forward_auth import NGINX_SITE, Front

API = "/rest/de.resolution.apitokenauth/latest"
ALICE = basic("alice", "alice-pw")
ISSUE = "/rest/api/2/issue/X-1"


async def make_token(
    client: TestClient[Any, Any], auth: dict[str, str] = ALICE, **extra: Any
) -> dict[str, Any]:
    resp = await client.post(
        f"{API}/user/token", json={"tokenDescription": "t", **extra}, headers=auth
    )
    assert resp.status == 200, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def rotate(
    client: TestClient[Any, Any], token_id: int, auth: dict[str, str], grace: int
) -> tuple[int, dict[str, Any]]:
    resp = await client.post(
        f"{API}/user/token/{token_id}/rotate", json={"gracePeriodSeconds": grace}, headers=auth
    )
    return resp.status, await resp.json()


async def works(client: TestClient[Any, Any], token: str) -> bool:
    resp = await client.get(ISSUE, headers=bearer(token))
    await resp.read()
    return resp.status == 200


# Rotation: what a secret on its way out may still do --------------------------------


async def test_a_replaced_secret_cannot_rotate_the_token_out_from_under_its_owner(
    jira: World,
) -> None:
    """The owner rotates a token (say, because its secret may have leaked) with a grace
    for the CI fleet. Whoever holds the replaced secret must not be able to rotate
    again: that would end the owner's new secret at once (grace 0) and leave the
    replaced secret's holder with the only secret that works, for the same token id."""
    made = await make_token(jira.client)
    old = made["plainTextToken"]
    status, rotated = await rotate(jira.client, made["id"], ALICE, 3600)
    assert status == 200
    new = rotated["plainTextToken"]
    assert await works(jira.client, old) and await works(jira.client, new)

    status, taken = await rotate(jira.client, made["id"], bearer(old), 0)
    assert status == 403, taken  # the replaced secret may use the token, not manage it
    assert await works(jira.client, new)  # the owner's secret is still the token's


# Forward auth behind a real nginx: the method the subrequest carries ------------------


async def make_live_read_token(live: Live) -> str:
    body = b'{"tokenDescription": "ci", "scope": "read"}'
    request = (
        f"POST {API}/user/token HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        "Authorization: Basic YWxpY2U6YWxpY2UtcHc=\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    status, _, answer = await exchange(live.port, request)
    assert status == 200, answer
    return str(json.loads(answer)["plainTextToken"])


@pytest.fixture
async def nginx(make_live: MakeLive, tmp_path: Path) -> AsyncIterator[Front]:
    """nginx with auth_request in front of the proxy, configured as docs/front-proxies.md says."""
    live = await make_live({"proxy": {"trusted_proxies": ["127.0.0.1/32"]}})
    port = free_port()
    site = NGINX_SITE.format(port=port, proxy=live.port, jira=live.upstream_port)
    with running_nginx(tmp_path / "nginx", site):
        yield Front(port, live)


@pytest.mark.slow  # a real nginx
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_a_read_token_cannot_write_through_nginx_auth_request(
    nginx: Front, method: str
) -> None:
    """docs/front-proxies.md's nginx configuration, as the suite runs it: nginx's
    auth subrequest must not let a read-scoped token's write reach Jira."""
    token = await make_live_read_token(nginx.live)
    nginx.live.upstream.received.clear()
    request = (
        f"{method} {ISSUE} HTTP/1.1\r\nHost: jira.example.com\r\nConnection: close\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        "Content-Length: 2\r\n\r\n{}"
    ).encode()
    status, _, body = await exchange(nginx.port, request)
    assert status == 403, body
    assert [r.method for r in nginx.live.upstream.received if r.path_qs == ISSUE] == []


# A token's answer must not hand out a Jira session --------------------------------------


class SessionMintingJira(FakeUpstream):
    """The fake Jira with docs/upstream.md's Seraph authenticator, which calls
    ``putPrincipalInSessionContext`` for a header login: like Jira after any
    authenticated REST call, the answer sets a session cookie for that user."""

    def app(self) -> web.Application:
        app = super().app()

        async def mint(request: web.Request, response: web.StreamResponse) -> None:
            user = self.by_name(request.headers.get(USER_HEADER, ""))
            if user is not None and SESSION_COOKIE not in request.cookies:
                # Added to the prepared headers: the hook runs after cookies are written.
                session = self.sign_in(user.name)
                response.headers.add("Set-Cookie", f"{SESSION_COOKIE}={session}; Path=/; HttpOnly")

        app.on_response_prepare.append(mint)
        return app


@pytest.fixture
async def minting(aiohttp_server: Any, aiohttp_client: Any, store_url: str, lane: str) -> World:
    upstream = SessionMintingJira("jira", JIRA_USERS)
    server = await aiohttp_server(upstream.app())
    raw = deep_merge(
        base_config(str(server.make_url("")).rstrip("/"), store_url, "jira"), LANES[lane]
    )
    cfg = config_from_dict(raw)
    clock = FakeClock()
    client = await aiohttp_client(GatewayTestServer(create_app(cfg, clock=clock)))
    return World(upstream, server, client, clock, cfg)


async def test_a_read_token_cannot_become_a_write_session(minting: World) -> None:
    """A read-scoped token limited to one network is used once; whatever cookies its
    answer carries must not give the holder the owner's Jira session: not a write
    through the data path (no Authorization, so no scope check), not a new
    unrestricted write token from the token API (session sign-in)."""
    client, upstream = minting.client, minting.upstream
    reader = await make_token(client, scope="read", allowedAddresses=["127.0.0.0/8"])
    answer = await client.get(ISSUE, headers=bearer(reader["plainTextToken"]))
    assert answer.status == 200
    cookie = "; ".join(f"{m.key}={m.value}" for m in answer.cookies.values())
    client.session.cookie_jar.clear()
    owned_before = len(await (await client.get(f"{API}/user/token", headers=ALICE)).json())

    # The data path: a write with the cookie alone.
    upstream.received.clear()
    write = await client.post(ISSUE, data=b"{}", headers={"Cookie": cookie} if cookie else {})
    await write.read()
    as_owner = [
        r
        for r in upstream.received
        if r.method == "POST"
        and any(
            k.lower() == "cookie" and upstream.sessions.get(v.partition("=")[2]) == "alice"
            for k, v in r.headers
        )
    ]
    problems = []
    if as_owner:
        problems.append("the cookie made a write through the data path as the token's owner")

    # The token API: session sign-in with the cookie, creating a write token.
    created = await client.post(
        f"{API}/user/token",
        json={"tokenDescription": "escalated"},
        headers={"Cookie": cookie, "X-Atlassian-Token": "no-check"} if cookie else {},
    )
    owned_after = len(await (await client.get(f"{API}/user/token", headers=ALICE)).json())
    if created.status != 401 or owned_after != owned_before:
        problems.append(f"the cookie signed in to the token API: {await created.text()}")
    assert problems == [], f"the read token's answer set {cookie!r}"


# The owner's name is not the owner --------------------------------------------------------


async def test_a_token_never_speaks_for_a_user_who_took_its_owners_old_name(
    make_world: MakeWorld,
) -> None:
    """Jira and Confluence let an admin rename a user (a name change, an LDAP sync) and
    let a new user take the old name later; user keys exist so that nothing follows a
    name to the wrong person. alice's token must not become the new "alice"'s: after the
    rename the upstream must never see the old name asserted for it (the proxy restarted
    in between, so no cache remembers anything)."""
    before = await make_world()
    made = await make_token(before.client)
    assert await works(before.client, made["plainTextToken"])

    after = await make_world()  # the same store: a restart, caches empty
    old_alice = after.upstream.by_name("alice")
    assert old_alice is not None
    newcomer = FakeUser("JIRAUSER10200", "alice", "new-pw", groups=("jira-users",))
    after.upstream.users = (
        *(u for u in after.upstream.users if u.name != "alice"),
        dataclasses.replace(old_alice, name="alicia"),
        newcomer,
    )
    after.upstream.received.clear()
    resp = await after.client.get(ISSUE, headers=bearer(made["plainTextToken"]))
    await resp.read()
    asserted = [
        v
        for r in after.upstream.for_clients()
        for k, v in r.headers
        if k.lower() == USER_HEADER.lower()
    ]
    # Either refused, or sent as the owner's current name: never as the newcomer.
    assert "alice" not in asserted, f"token {made['id']} of JIRAUSER10100 reached Jira as alice"


# A read token's write, by any spelling of the request ------------------------------------


def raw(method: str, token: str, *extra: str, close: bool = False, body: bytes = b"") -> bytes:
    lines = [
        f"{method} {ISSUE} HTTP/1.1",
        "Host: jira.example.com",
        f"Authorization: Bearer {token}",
    ]
    lines += [*extra, f"Content-Length: {len(body)}"]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@pytest.mark.parametrize(
    "requests",
    [
        # After an allowed request on the same connection: the fast lane reuses its
        # decision about the Authorization header, never the method's.
        [("GET", ()), ("DELETE", ()), ("POST", ()), ("GET", ())],
        # Method overrides ride along; the method itself is what is judged.
        [("GET", ()), ("POST", ("X-HTTP-Method-Override: GET",))],
        # A body on a read, then a write.
        [("OPTIONS", ()), ("PUT", ())],
    ],
    ids=["keep-alive", "override-header", "options-then-put"],
)
@pytest.mark.parametrize("pipelined", [False, True], ids=["in-turn", "pipelined"])
async def test_a_read_token_writes_nothing_on_a_reused_connection(
    make_live: MakeLive, requests: list[tuple[str, tuple[str, ...]]], pipelined: bool
) -> None:
    live = await make_live()
    token = await make_live_read_token(live)
    live.upstream.received.clear()
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    statuses = []
    try:
        wire = [
            raw(m, token, *extra, close=i == len(requests) - 1, body=b"{}")
            for i, (m, extra) in enumerate(requests)
        ]
        if pipelined:
            writer.write(b"".join(wire))
            answer = await asyncio.wait_for(reader.read(), 10)
            statuses = [int(a[:3]) for a in answer.split(b"HTTP/1.1 ")[1:]]
        else:
            for request in wire:
                writer.write(request)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                statuses.append(int(head[9:12]))
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
    finally:
        writer.close()
    expected = [200 if m in ("GET", "HEAD", "OPTIONS") else 403 for m, _ in requests]
    assert statuses == expected
    reached = [r.method for r in live.upstream.received if r.path_qs == ISSUE]
    assert reached == [m for m in (m for m, _ in requests) if m in ("GET", "OPTIONS")]


async def test_a_replaced_secret_cannot_mint_a_token_that_outlives_its_grace(
    jira: World,
) -> None:
    """The grace is for updating a fleet, not for the replaced secret's holder to make
    itself a new token that works after the grace ends."""
    made = await make_token(jira.client)
    old = made["plainTextToken"]
    status, _ = await rotate(jira.client, made["id"], ALICE, 600)
    assert status == 200
    resp = await jira.client.post(
        f"{API}/user/token", json={"tokenDescription": "spare"}, headers=bearer(old)
    )
    minted = await resp.json()
    assert resp.status == 403, minted
    listing = await (await jira.client.get(f"{API}/user/token", headers=ALICE)).json()
    assert [t["id"] for t in listing] == [made["id"]]


# Session sign-in: the new calls under the cross-site rule, and cookies beside credentials --


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        ({}, 403),  # a cross-site form cannot set X-Atlassian-Token
        ({"X-Atlassian-Token": "no-check", "Origin": "null"}, 403),
        ({"X-Atlassian-Token": "no-check", "Origin": "http://evil.example"}, 403),
        ({"X-Atlassian-Token": "nocheck"}, 403),
        ({"Content-Type": "text/plain"}, 403),
        ({"X-Atlassian-Token": "no-check"}, 200),  # no Origin: not a cross-site browser call
    ],
    ids=["no-header", "null-origin", "foreign-origin", "nocheck", "text-plain", "own"],
)
@pytest.mark.parametrize("call", ["rotate", "narrow", "networks"])
async def test_session_calls_of_the_token_policy_obey_the_cross_site_rule(
    jira: World, call: str, extra: dict[str, str], status: int
) -> None:
    made = await make_token(jira.client)
    cookie = {"Cookie": f"{SESSION_COOKIE}={jira.upstream.sign_in('alice')}"}
    if call == "rotate":
        resp = await jira.client.post(
            f"{API}/user/token/{made['id']}/rotate",
            data=b'{"gracePeriodSeconds": 0}',
            headers={**cookie, **extra},
        )
    else:
        change = {"scope": "read"} if call == "narrow" else {"allowedAddresses": ["10.9.0.0/16"]}
        resp = await jira.client.patch(
            f"{API}/user/token/{made['id']}", data=json.dumps(change), headers={**cookie, **extra}
        )
    assert resp.status == status, await resp.text()
    # Refused means unchanged: the original secret still works, from here, for writes.
    still = await jira.client.post(ISSUE, data=b"{}", headers=bearer(made["plainTextToken"]))
    assert (still.status == 200) is (status != 200)


@pytest.mark.parametrize(
    "authorization",
    ["Basic YWxpY2U6d3Jvbmc=", "Bearer atpx_1_" + "A" * 38, "Negotiate YWJj", "Basic"],
    ids=["wrong-password", "bad-token", "other-scheme", "malformed"],
)
async def test_a_signed_in_cookie_does_not_rescue_bad_credentials(
    jira: World, authorization: str
) -> None:
    """The session is asked about only when there is no Authorization at all."""
    cookie = f"{SESSION_COOKIE}={jira.upstream.sign_in('alice')}"
    resp = await jira.client.post(
        f"{API}/user/token",
        json={"tokenDescription": "smuggled"},
        headers={"Cookie": cookie, "Authorization": authorization, "X-Atlassian-Token": "no-check"},
    )
    assert resp.status == 401, await resp.text()
    listing = await (await jira.client.get(f"{API}/user/token", headers=ALICE)).json()
    assert listing == []


# A password login the proxy does not see -------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {"auth": {"allowed_networks": ["10.0.0.0/8"]}},  # the client is 127.0.0.1
        {"auth": {"allow_password_basic_auth": False}},
    ],
    ids=["outside-allowed-networks", "passwords-disabled"],
)
@pytest.mark.parametrize(
    "query",
    [
        "os_username=alice&os_password=alice-pw",
        "os_authType=basic&os_username=alice&os_password=alice-pw",
        "OS_USERNAME=x&os_password=alice-pw&os_username=alice",
    ],
    ids=["seraph-params", "with-auth-type", "reordered"],
)
async def test_a_password_in_the_query_is_a_password_login_too(
    make_world: MakeWorld, config: dict[str, Any], query: str
) -> None:
    """Seraph, which Jira and Confluence authenticate through, logs a request in from
    its os_username and os_password parameters (the feeds' documented way). Where the
    site refuses password logins from an address, or for REST calls altogether, that
    spelling of the same password must not reach the upstream either."""
    world = await make_world(config=config)
    # Refused as the rule says: from outside the networks 403, passwords disabled 401.
    refused = 403 if "allowed_networks" in config["auth"] else 401
    assert (await world.client.get(ISSUE, headers=ALICE)).status == refused  # Basic
    world.upstream.received.clear()
    resp = await world.client.get(f"{ISSUE}?{query}")
    await resp.read()
    leaked = [r.path_qs for r in world.upstream.received if "os_password" in r.path_qs]
    assert leaked == [], "a password login reached the upstream past the site's rule"
    assert resp.status == refused


PASSWORD_QUERY = "/rest/api/2/issue/X-1?os_username=alice&os_password=alice-pw"
SITES = {
    "defaults": {},
    "passwords off": {"auth": {"allow_password_basic_auth": False}},
    "outside allowed networks": {"auth": {"allowed_networks": ["10.0.0.0/8"]}},
}


@pytest.mark.parametrize(
    ("site", "headers", "status", "reason"),
    [
        # Where the query cannot change the decision, no URI said is decided as before.
        ("defaults", [], 200, None),
        ("defaults", [("X-Original-URI", PASSWORD_QUERY)], 200, None),  # Jira checks it
        # Where it can, the front proxy must say the URI (nginx does not by itself).
        ("passwords off", [], 403, "uri_missing"),
        ("outside allowed networks", [], 403, "uri_missing"),
        ("passwords off", [("X-Original-URI", ISSUE)], 200, None),
        ("outside allowed networks", [("X-Forwarded-Uri", ISSUE)], 200, None),
        ("passwords off", [("X-Original-URI", PASSWORD_QUERY)], 401, "password_disabled"),
        ("passwords off", [("X-Forwarded-Uri", PASSWORD_QUERY)], 401, "password_disabled"),
        ("passwords off", [("X-Forwarded-Uri", "/x?os%5Fpassword=pw")], 401, "password_disabled"),
        ("outside allowed networks", [("X-Original-URI", PASSWORD_QUERY)], 403, "network"),
        # Several values (a client's own copy beside the front proxy's): the strictest.
        (
            "passwords off",
            [("X-Original-URI", ISSUE), ("X-Forwarded-Uri", PASSWORD_QUERY)],
            401,
            "password_disabled",
        ),
        (
            "outside allowed networks",
            [("X-Forwarded-Uri", PASSWORD_QUERY), ("X-Forwarded-Uri", ISSUE)],
            403,
            "network",
        ),
    ],
)
async def test_forward_auth_judges_the_uri_the_front_proxy_names(
    make_world: MakeWorld,
    site: str,
    headers: list[tuple[str, str]],
    status: int,
    reason: str | None,
) -> None:
    """Issue 18, item 8: forward auth judged only its own subrequest's target, so
    ``?os_username=alice&os_password=...`` got a 200 anonymous decision and went on to
    Jira, which logged alice in, with passwords off or from outside the allowed
    networks. The original URI is now held to the data path's os_password rule."""
    world = await make_world(config={**SITES[site], "logging": {"access_log": True}})
    components = world.client.server.app[COMPONENTS]
    components.live.swap(dataclasses.replace(components.live.now, log_format="json"))
    log = components.access_log
    log.stream = io.StringIO()
    resp = await world.client.get("/__apitokenproxy/auth", headers=CIMultiDict(headers))
    body = await resp.text()
    assert resp.status == status, body
    if reason == "uri_missing":
        assert "X-Original-URI" in json.loads(body)["message"]
    log.flush()
    [line] = [json.loads(text) for text in log.stream.getvalue().splitlines()]
    assert line["reason"] == reason
    assert world.upstream.for_clients() == []


# Token managers are not sysadmins -----------------------------------------------------------


async def test_a_token_manager_cannot_become_a_sysadmin_by_making_their_token(
    make_world: MakeWorld,
) -> None:
    """auth.token_manager_groups lets a group manage tokens "without being" sysadmins.
    Creating a token for another user hands the plaintext to the creator; created for a
    sysadmin, it would let the manager act as that sysadmin in Jira."""
    world = await make_world(config={"auth": {"token_manager_groups": ["developers"]}})
    # alice is in "developers": a token manager, not a sysadmin.
    ordinary = await world.client.post(
        f"{API}/user/token",
        json={"tokenDescription": "for bob", "tokenForUserKey": "JIRAUSER10105"},
        headers=ALICE,
    )
    assert ordinary.status == 200  # the delegated right itself works

    resp = await world.client.post(
        f"{API}/user/token",
        json={"tokenDescription": "helpdesk", "tokenForUserKey": "admin"},
        headers=ALICE,
    )
    made = await resp.json()
    if resp.status == 200:
        world.upstream.received.clear()
        used = await world.client.get(ISSUE, headers=bearer(made["plainTextToken"]))
        seen = [v for k, v in (await used.json())["headers"] if k == USER_HEADER]
        pytest.fail(f"a token manager got a sysadmin's token; Jira saw the user {seen}")
    assert resp.status == 403, made


# Allowed addresses behind a trusted proxy: what a client can put in X-Forwarded-For --------

BUILD = ["192.0.2.0/24"]


@pytest.mark.parametrize(
    ("forwarded_for", "status"),
    [
        # The load balancer (127.0.0.1, trusted) appends the real client last.
        (["192.0.2.7"], 200),
        (["192.0.2.7", "198.51.100.7"], 401),  # the client's own header, then the balancer's
        (["192.0.2.7, 192.0.2.8", "198.51.100.7"], 401),
        (["192.0.2.7, 198.51.100.7, 127.0.0.1"], 401),  # a trusted hop is skipped, not trusted left
        (["198.51.100.7, 192.0.2.7, 127.0.0.1"], 200),
        (["2002:c000:207::1"], 401),  # 6to4 embeds 192.0.2.7, but is not it
        (["::c000:207"], 401),  # IPv4-compatible, not IPv4-mapped
        (["64:ff9b::c000:207"], 401),  # NAT64's prefix
        (["192.0.2.7:443"], 401),  # a port makes it no address at all
        (["[192.0.2.7]"], 401),
        (["192.0.2.007"], 401),  # leading zeros: octal to some parsers
        (["unknown"], 401),
        (["  192.0.2.7  "], 200),
        ([",,192.0.2.7,,"], 200),
    ],
)
async def test_a_client_cannot_talk_its_way_into_allowed_addresses(
    make_world: MakeWorld, forwarded_for: list[str], status: int
) -> None:
    world = await make_world(config={"proxy": {"trusted_proxies": ["127.0.0.1/32"]}})
    made = await make_token(
        world.client, {**ALICE, "X-Forwarded-For": "192.0.2.7"}, allowedAddresses=BUILD
    )
    headers = [("Authorization", f"Bearer {made['plainTextToken']}")]
    headers += [("X-Forwarded-For", value) for value in forwarded_for]
    for path in (ISSUE, f"{API}/user/token/current"):
        resp = await world.client.get(path, headers=headers)
        assert resp.status == status, (path, await resp.text())


# A stolen token tried from elsewhere must not learn that it is good ---------------------


@pytest.mark.real_argon2  # a refusal that ran argon2 must show in its time
async def test_a_token_outside_its_addresses_is_refused_in_a_bad_tokens_time(
    make_live: MakeLive,
) -> None:
    """docs/token-policy.md: a use from another address "is refused like a bad token
    ... so a stolen token tried from elsewhere does not learn that it is good". The
    refusal's timing must not tell either: from outside its addresses any secret for
    the token costs the same (one read of its row, no argon2), so a good token's
    refusal must not come from the cache in a fraction of that."""
    # Throttling out of the way: only the time of each refusal is compared.
    live = await make_live({"auth": {"throttle": {"max_failures": 1000}}})
    body = b'{"tokenDescription": "ci", "allowedAddresses": ["10.0.0.0/8"]}'
    request = (
        f"POST {API}/user/token HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        "Authorization: Basic YWxpY2U6YWxpY2UtcHc=\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    status, _, answer = await exchange(live.port, request)
    assert status == 200, answer
    made = json.loads(answer)
    kinds: dict[str, Callable[[int], str]] = {
        "stolen, used from outside": lambda i: made["plainTextToken"],
        "wrong secret": lambda i: format_token(made["id"], f"{i:032d}"),
    }
    times: dict[str, list[float]] = {name: [] for name in kinds}
    for i in range(10):
        for name, make in kinds.items():
            started = time.perf_counter()
            got, _, _ = await exchange(
                live.port,
                f"GET {ISSUE} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                f"Authorization: Bearer {make(i)}\r\n\r\n".encode(),
            )
            times[name].append(time.perf_counter() - started)
            assert got == 401
    medians = {name: statistics.median(values) for name, values in times.items()}
    assert max(medians.values()) < 2 * min(medians.values()), medians


@pytest.mark.parametrize(
    ("request_line", "extra"),
    [
        (
            f"GET {ISSUE}",
            (
                "Connection: Upgrade, HTTP2-Settings",
                "Upgrade: h2c",
                "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
            ),
        ),
        (f"GET {ISSUE}", ("Upgrade: websocket",)),  # no Connection: upgrade
        (
            f"GET {ISSUE}",
            (
                "Connection: keep-alive, Upgrade",
                "Upgrade: WebSocket",
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Version: 13",
            ),
        ),
        ("CONNECT jira.example.com:443", ()),
    ],
    ids=["h2c", "upgrade-alone", "websocket-mixed-case", "connect"],
)
async def test_a_read_token_cannot_switch_protocols(
    make_live: MakeLive, request_line: str, extra: tuple[str, ...]
) -> None:
    live = await make_live()
    token = await make_live_read_token(live)
    live.upstream.received.clear()
    lines = [
        f"{request_line} HTTP/1.1",
        "Host: jira.example.com",
        *extra,
        f"Authorization: Bearer {token}",
        "Connection: close",
    ]
    status, _, body = await exchange(live.port, ("\r\n".join(lines) + "\r\n\r\n").encode())
    # CONNECT's authority-form target names no resource here (404); the rest are the scope's.
    assert status == (404 if request_line.startswith("CONNECT") else 403), body
    assert live.upstream.for_clients() == []
