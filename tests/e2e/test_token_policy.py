"""Per-token policy through the real proxy, on both lanes and both stores: read-only
tokens, allowed networks, rotation with a grace, introspection and the expiry header,
and ``email:TOKEN``."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from apitokenproxy.app import COMPONENTS, create_app
from apitokenproxy.auth.grant import EXPIRY_HEADER, expiry_value
from apitokenproxy.auth.tokens import parse_token
from apitokenproxy.tokenapi.validity import valid_until

from ..conftest import START_MS, GatewayTestServer, MakeWorld, World
from ..fakes import USER_HEADER, basic, bearer
from ..waiting import until

API = "/rest/de.resolution.apitokenauth/latest"
# Token API calls close their connection: the fast lane hands a connection to aiohttp for
# good at its first token API request, and the data-path requests after it must start
# on a fresh connection, in the lane under test.
CLOSE = {"Connection": "close"}
ALICE = {**basic("alice", "alice-pw"), **CLOSE}
ISSUE = "/rest/api/2/issue/X-1"
HOUR_MS = 3_600_000


async def make_token(
    client: TestClient[Any, Any], auth: dict[str, str] = ALICE, **extra: Any
) -> dict[str, Any]:
    resp = await client.post(
        f"{API}/user/token", json={"tokenDescription": "t", **extra}, headers=auth
    )
    assert resp.status == 200, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


def fast_served(client: TestClient[Any, Any]) -> int:
    """Requests the fast lane answered itself: on the fast lane, the data path's."""
    return client.app[COMPONENTS].fast_lane.served


def reached_upstream(world: World, path: str = ISSUE) -> int:
    return sum(r.path_qs == path for r in world.upstream.received)


async def status_of(
    client: TestClient[Any, Any], method: str, token: str, path: str = ISSUE, **kw: Any
) -> tuple[int, dict[str, Any] | None]:
    resp = await client.request(method, path, headers={**bearer(token), **kw.pop("headers", {})})
    body = await resp.read()
    data = None
    if resp.content_type == "application/json" and body:
        data = await resp.json()
    return resp.status, data


# Scope: read --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "allowed"),
    [
        ("GET", True),
        ("HEAD", True),
        ("OPTIONS", True),
        ("POST", False),
        ("PUT", False),
        ("PATCH", False),
        ("DELETE", False),
        ("PROPFIND", False),  # not a method the fast lane serves: the aiohttp lane decides
    ],
)
async def test_a_read_token_may_only_read(
    jira: World, lane: str, method: str, allowed: bool
) -> None:
    made = await make_token(jira.client, scope="read")
    token = made["plainTextToken"]
    # Twice: the first check awaits the store, the second is served from the cache.
    for seen in (1, 2):
        status, data = await status_of(jira.client, method, token, data=b"{}")
        if allowed:
            assert status == 200
            assert reached_upstream(jira) == seen
        else:
            assert status == 403
            assert data is not None
            assert data["error"] == "token_scope"
            assert "read scope" in data["message"]
            assert reached_upstream(jira) == 0  # refused before the upstream saw anything
    if lane == "fast" and method in ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"):
        assert fast_served(jira.client) == 2  # both answered by the lane under test
    # The same token with write scope (the default) may do anything.
    writer = await make_token(jira.client)
    assert (await status_of(jira.client, method, writer["plainTextToken"], data=b"{}"))[0] == 200


async def test_a_read_token_cannot_upgrade_to_a_websocket(jira: World) -> None:
    reader = await make_token(jira.client, scope="read")
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await jira.client.ws_connect("/_test/ws", headers=bearer(reader["plainTextToken"]))
    assert info.value.status == 403
    assert reached_upstream(jira, "/_test/ws") == 0
    writer = await make_token(jira.client)
    async with jira.client.ws_connect("/_test/ws", headers=bearer(writer["plainTextToken"])) as ws:
        assert (await ws.receive_json())["user"] == "alice"


async def test_a_read_token_is_refused_before_100_continue(jira: World) -> None:
    reader = (await make_token(jira.client, scope="read"))["plainTextToken"]
    port = jira.client.port
    assert port is not None
    reader_conn, writer_conn = await asyncio.open_connection("127.0.0.1", port)
    writer_conn.write(
        f"POST {ISSUE} HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
        f"Expect: 100-continue\r\nAuthorization: Bearer {reader}\r\n\r\n".encode()
    )
    answer = await asyncio.wait_for(reader_conn.read(4096), 5)
    writer_conn.close()
    assert answer.startswith(b"HTTP/1.1 403")
    assert reached_upstream(jira) == 0


async def test_a_read_token_can_read_the_token_api_but_not_change_it(jira: World) -> None:
    made = await make_token(jira.client, scope="read")
    token = bearer(made["plainTextToken"])
    listing = await jira.client.get(f"{API}/user/token", headers={**token, **CLOSE})
    assert listing.status == 200
    itself = await jira.client.get(f"{API}/user/token/current", headers={**token, **CLOSE})
    assert (itself.status, (await itself.json())["scope"]) == (200, "read")
    for method, path, body in [
        ("POST", "/user/token", {"tokenDescription": "more"}),
        ("PATCH", f"/user/token/{made['id']}", {"tokenDescription": "x"}),
        ("POST", f"/user/token/{made['id']}/rotate", {}),
        ("DELETE", f"/user/token/{made['id']}", None),
    ]:
        resp = await jira.client.request(method, API + path, json=body, headers={**token, **CLOSE})
        data = await resp.json()
        assert (resp.status, data["error"]) == (403, "token_scope"), (method, path)
    assert len(await (await jira.client.get(f"{API}/user/token", headers=ALICE)).json()) == 1


async def test_a_scope_narrows_at_once_and_never_widens(jira: World) -> None:
    made = await make_token(jira.client)
    token = made["plainTextToken"]
    assert (await status_of(jira.client, "POST", token))[0] == 200  # write, and now cached
    resp = await jira.client.patch(
        f"{API}/user/token/{made['id']}", json={"scope": "read"}, headers=ALICE
    )
    assert resp.status == 200
    listed = await resp.json()
    assert (listed["scope"], listed["allowedAddresses"], listed["description"]) == (
        "read", [], "t"
    )  # fmt: skip
    assert (await status_of(jira.client, "POST", token))[0] == 403  # the cache was dropped
    assert (await status_of(jira.client, "GET", token))[0] == 200

    resp = await jira.client.patch(
        f"{API}/user/token/{made['id']}", json={"scope": "write"}, headers=ALICE
    )
    assert resp.status == 400
    assert "narrowed, never widened" in (await resp.json())["message"]
    assert (await status_of(jira.client, "POST", token))[0] == 403


# Allowed networks -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("allowed", "forwarded_for", "status"),
    [
        # Directly from 127.0.0.1 (no trusted proxy: X-Forwarded-For is not believed).
        (["127.0.0.0/8"], None, 200),
        (["127.0.0.1"], None, 200),
        (["10.0.0.0/8", "127.0.0.1/32"], None, 200),
        (["10.0.0.0/8"], None, 401),
        (["::1/128"], None, 401),
        (["192.0.2.0/24"], "192.0.2.7", 401),  # a client cannot choose its address
    ],
)
async def test_allowed_networks_from_a_direct_client(
    jira: World, allowed: list[str], forwarded_for: str | None, status: int
) -> None:
    made = await make_token(jira.client, allowedAddresses=allowed)
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    got, data = await status_of(jira.client, "GET", made["plainTextToken"], headers=headers)
    assert got == status
    assert reached_upstream(jira) == (1 if status == 200 else 0)
    if status == 401:
        # Refused like a bad token: nothing says the token itself was good.
        assert data is not None
        assert data["error"] == "invalid_token"
        assert data["message"] == "the token is unknown or has been revoked"


@pytest.mark.parametrize(
    ("allowed", "forwarded_for", "status"),
    [
        (["192.0.2.0/24"], "192.0.2.7", 200),
        (["192.0.2.0/24"], "198.51.100.7", 401),
        (["2001:db8::/32"], "2001:db8::5", 200),
        (["2001:db8::/32"], "2001:db9::5", 401),
        (["2001:db8::/32", "192.0.2.0/24"], "192.0.2.200", 200),
        (["192.0.2.0/24"], "::ffff:192.0.2.7", 200),  # an IPv4-mapped address is the IPv4 one
        # The rightmost untrusted hop counts, whatever a client put before it.
        (["192.0.2.0/24"], "192.0.2.7, 198.51.100.7", 401),
    ],
)
async def test_allowed_networks_behind_a_trusted_proxy(
    make_world: MakeWorld, allowed: list[str], forwarded_for: str, status: int
) -> None:
    world = await make_world(config={"proxy": {"trusted_proxies": ["127.0.0.1/32"]}})
    made = await make_token(
        world.client, {**ALICE, "X-Forwarded-For": "192.0.2.7"}, allowedAddresses=allowed
    )
    token = made["plainTextToken"]
    got, _ = await status_of(world.client, "GET", token, headers={"X-Forwarded-For": forwarded_for})
    assert got == status
    # The token API applies the same rule.
    resp = await world.client.get(
        f"{API}/user/token", headers={**bearer(token), "X-Forwarded-For": forwarded_for, **CLOSE}
    )
    assert resp.status == status


class LoopbackV6Server(GatewayTestServer):
    """The gateway on ``[::1]``, so clients connect over IPv6."""

    async def start_server(self, loop: Any = None, **kwargs: Any) -> None:
        from apitokenproxy.server import start_site

        if self.runner:
            return
        self.runner = await start_site(self.app, "::1", 0, access_log=False)
        self.port = self.runner.addresses[0][1]
        self.scheme = "http"
        self._root = URL(f"http://[::1]:{self.port}")


async def test_allowed_networks_from_a_direct_ipv6_client(jira: World, aiohttp_client: Any) -> None:
    v6 = await aiohttp_client(LoopbackV6Server(create_app(jira.config, clock=jira.clock)))
    inside = (await make_token(jira.client, allowedAddresses=["::1/128"]))["plainTextToken"]
    outside = (await make_token(jira.client, allowedAddresses=["2001:db8::/32"]))["plainTextToken"]
    assert (await status_of(v6, "GET", inside))[0] == 200
    assert (await status_of(v6, "GET", outside))[0] == 401
    assert (await status_of(jira.client, "GET", inside))[0] == 401  # 127.0.0.1 is not ::1


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"allowedAddresses": "10.0.0.0/8"}, "must be a list"),
        ({"allowedAddresses": ["10.0.0.0/33"]}, "is not an IP network"),
        ({"allowedAddresses": ["example.com"]}, "is not an IP network"),
        ({"allowedAddresses": [f"10.0.{i}.0/24" for i in range(65)]}, "at most 64"),
        ({"scope": "admin"}, "scope must be one of"),
        ({"scope": None, "allowedAddresses": [1]}, "must be a list"),
    ],
)
async def test_bad_policy_fields_are_400_and_nothing_is_written(
    jira: World, body: dict[str, Any], fragment: str
) -> None:
    resp = await jira.client.post(
        f"{API}/user/token", json={"tokenDescription": "t", **body}, headers=ALICE
    )
    data = await resp.json()
    assert resp.status == 400
    assert fragment in data["message"]
    assert await (await jira.client.get(f"{API}/user/token", headers=ALICE)).json() == []


async def test_policy_fields_are_shown_only_for_a_token_that_has_a_policy(jira: World) -> None:
    plain = await make_token(jira.client)
    narrow = await make_token(
        jira.client, scope="read", allowedAddresses=["10.1.2.3/16", "10.1.0.0/16", "::1"]
    )
    assert "scope" not in plain and "allowedAddresses" not in plain
    assert (narrow["scope"], narrow["allowedAddresses"]) == ("read", ["10.1.0.0/16", "::1/128"])
    listing = await (await jira.client.get(f"{API}/user/token", headers=ALICE)).json()
    assert set(listing[0]) == {"created", "description", "id", "lastAccessed", "validUntil"}
    assert listing[1]["allowedAddresses"] == ["10.1.0.0/16", "::1/128"]
    admin = {**basic("admin", "admin-pw"), **CLOSE}
    page = await jira.client.get(f"{API}/user/tokensByFilter?notValidAfter=-1", headers=admin)
    content = (await page.json())["content"]
    assert [("scope" in t, t.get("scope")) for t in content] == [(False, None), (True, "read")]
    assert (await status_of(jira.client, "GET", narrow["plainTextToken"]))[0] == 401
    # Clearing the networks through PATCH, with no description: allowed for policy fields,
    # and in force at once.
    resp = await jira.client.patch(
        f"{API}/user/token/{narrow['id']}", json={"allowedAddresses": []}, headers=ALICE
    )
    assert resp.status == 200
    assert (await resp.json())["allowedAddresses"] == []
    assert (await status_of(jira.client, "GET", narrow["plainTextToken"]))[0] == 200


# Rotation ---------------------------------------------------------------------------


async def rotate(
    client: TestClient[Any, Any], token_id: int, body: Any = None, status: int = 200
) -> dict[str, Any]:
    resp = await client.post(f"{API}/user/token/{token_id}/rotate", json=body, headers=ALICE)
    data = await resp.json()
    assert resp.status == status, data
    return data  # type: ignore[no-any-return]


async def test_rotation_keeps_the_old_secret_for_the_grace_only(jira: World) -> None:
    made = await make_token(jira.client, scope="read", allowedAddresses=["127.0.0.0/8"])
    old = made["plainTextToken"]
    assert (await status_of(jira.client, "GET", old))[0] == 200  # cached before the rotation

    rotated = await rotate(jira.client, made["id"], {"gracePeriodSeconds": 3600})
    new = rotated["plainTextToken"]
    assert parse_token(new).token_id == made["id"] != None  # noqa: E711 - same id
    assert new != old
    for same in ("id", "description", "created", "validUntil", "scope", "allowedAddresses"):
        assert rotated[same] == made[same], same
    assert rotated["previousTokenValidUntil"] == START_MS + HOUR_MS

    assert (await status_of(jira.client, "GET", new))[0] == 200  # at once
    jira.clock.advance(HOUR_MS - 1)
    assert (await status_of(jira.client, "GET", old))[0] == 200  # within the grace
    assert (await status_of(jira.client, "POST", old))[0] == 403  # with the token's policy
    jira.clock.advance(1)
    status, data = await status_of(jira.client, "GET", old)
    assert status == 401
    assert data is not None and "replaced by a rotation" in data["message"]
    assert (await status_of(jira.client, "GET", new))[0] == 200


@pytest.mark.parametrize(
    ("config_max", "body", "grace_ms"),
    [
        (None, None, 24 * HOUR_MS),  # absent: one day
        (None, {}, 24 * HOUR_MS),
        (None, {"gracePeriodSeconds": 60}, 60_000),
        (None, {"gracePeriodSeconds": "60"}, 60_000),
        (None, {"gracePeriodSeconds": 7 * 86_400}, 24 * HOUR_MS),  # capped to the maximum
        (600, None, 600_000),
        (0, {"gracePeriodSeconds": 60}, None),
        (None, {"gracePeriodSeconds": 0}, None),  # 0: the old secret stops at once
    ],
)
async def test_rotation_grace_is_the_callers_within_the_admins_maximum(
    make_world: MakeWorld, config_max: int | None, body: Any, grace_ms: int | None
) -> None:
    tokens = {} if config_max is None else {"max_rotation_grace_seconds": config_max}
    world = await make_world(config={"tokens": tokens})
    made = await make_token(world.client)
    old = made["plainTextToken"]
    assert (await status_of(world.client, "GET", old))[0] == 200
    rotated = await rotate(world.client, made["id"], body)
    expected = None if grace_ms is None else START_MS + grace_ms
    assert rotated["previousTokenValidUntil"] == expected
    assert (await status_of(world.client, "GET", old))[0] == (401 if grace_ms is None else 200)


@pytest.mark.parametrize(
    ("body", "status"),
    [({"gracePeriodSeconds": -1}, 400), ({"gracePeriodSeconds": 1.5}, 400), ([], 400)],
)
async def test_bad_rotation_requests_change_nothing(jira: World, body: Any, status: int) -> None:
    made = await make_token(jira.client)
    await rotate(jira.client, made["id"], body, status)
    assert (await status_of(jira.client, "GET", made["plainTextToken"]))[0] == 200


async def test_a_second_rotation_ends_the_first_old_secret_and_is_logged(
    jira: World, caplog: pytest.LogCaptureFixture
) -> None:
    made = await make_token(jira.client)
    first = made["plainTextToken"]
    caplog.set_level("INFO", logger="apitokenproxy")
    second = (await rotate(jira.client, made["id"], {"gracePeriodSeconds": 600}))["plainTextToken"]
    third = (await rotate(jira.client, made["id"], {"gracePeriodSeconds": 600}))["plainTextToken"]
    assert (await status_of(jira.client, "GET", first))[0] == 401
    assert (await status_of(jira.client, "GET", second))[0] == 200
    assert (await status_of(jira.client, "GET", third))[0] == 200
    rotations = [r.getMessage() for r in caplog.records if "rotated" in r.getMessage()]
    assert (
        rotations
        == [
            f"token {made['id']} of JIRAUSER10100 rotated by JIRAUSER10100; "
            "the replaced secret works for 600 s more"
        ]
        * 2
    )
    for secret in (first, second, third):
        assert parse_token(secret).secret not in caplog.text


async def test_a_rotation_keeps_last_accessed(jira: World) -> None:
    made = await make_token(jira.client)
    jira.clock.advance(5_000)
    assert (await status_of(jira.client, "GET", made["plainTextToken"]))[0] == 200
    await rotate(jira.client, made["id"])  # before the use above was written
    await jira.client.app[COMPONENTS].last_accessed.flush()
    listing = await (await jira.client.get(f"{API}/user/token", headers=ALICE)).json()
    assert listing[0]["lastAccessed"] == START_MS + 5_000


async def test_only_the_owner_rotates_and_others_see_not_found(jira: World) -> None:
    made = await make_token(jira.client)
    resp = await jira.client.post(
        f"{API}/user/token/{made['id']}/rotate", headers={**basic("bob", "bob-pw"), **CLOSE}
    )
    assert resp.status == 404
    assert (await status_of(jira.client, "GET", made["plainTextToken"]))[0] == 200


async def test_rotations_and_narrowing_reach_a_second_instance(
    jira: World, aiohttp_client: Any, store_url: str
) -> None:
    """On PostgreSQL the instances share nothing but the store; on SQLite, the file."""
    second = await aiohttp_client(GatewayTestServer(create_app(jira.config, clock=jira.clock)))
    made = await make_token(jira.client)
    old = made["plainTextToken"]
    assert (await status_of(second, "GET", old))[0] == 200  # the second instance caches it

    rotated = await rotate(jira.client, made["id"], {"gracePeriodSeconds": 60})
    assert (await status_of(second, "GET", rotated["plainTextToken"]))[0] == 200  # at once
    assert (await status_of(second, "GET", old))[0] == 200  # within the grace
    # The rotation reaches the second instance as a revocation does, and from then
    # on its copy of the old secret ends with the grace.
    jira.clock.advance(60_000)

    async def answers(method: str, token: str, status: int) -> bool:
        return (await status_of(second, method, token))[0] == status

    await until(lambda: answers("GET", old, 401), "the second instance ends the old's grace")
    assert (await status_of(second, "GET", rotated["plainTextToken"]))[0] == 200

    at_once = await rotate(jira.client, made["id"], {"gracePeriodSeconds": 0})
    assert (await status_of(second, "GET", at_once["plainTextToken"]))[0] == 200
    await until(
        lambda: answers("GET", rotated["plainTextToken"], 401),
        "the second instance refuses the replaced secret",
    )

    # A narrower scope reaches it the same way.
    newest = at_once["plainTextToken"]
    assert (await status_of(second, "POST", newest))[0] == 200
    resp = await jira.client.patch(
        f"{API}/user/token/{made['id']}", json={"scope": "read"}, headers=ALICE
    )
    assert resp.status == 200
    await until(lambda: answers("POST", newest, 403), "the second instance stops the writes")


# Introspection and the expiry header ---------------------------------------------------


async def test_a_token_describes_itself(jira: World) -> None:
    made = await make_token(jira.client, allowedAddresses=["127.0.0.0/8"])
    resp = await jira.client.get(
        f"{API}/user/token/current", headers={**bearer(made["plainTextToken"]), **CLOSE}
    )
    assert resp.status == 200
    assert await resp.json() == {
        "id": made["id"],
        "description": "t",
        "created": START_MS,
        "validUntil": made["validUntil"],
        "lastAccessed": 0,
        "tokenForUserKey": "JIRAUSER10100",
        "tokenForUserName": "alice",
        "tokenCreatedByUserKey": "JIRAUSER10100",
        "scope": "write",
        "allowedAddresses": ["127.0.0.0/8"],
        "secretValidUntil": made["validUntil"],
    }
    resp = await jira.client.get(f"{API}/user/token/current", headers=ALICE)
    assert resp.status == 400
    assert "authenticate with that token" in (await resp.json())["message"]


async def test_introspection_with_a_replaced_secret_says_when_it_stops(jira: World) -> None:
    made = await make_token(jira.client)
    await rotate(jira.client, made["id"], {"gracePeriodSeconds": 120})
    resp = await jira.client.get(
        f"{API}/user/token/current", headers={**bearer(made["plainTextToken"]), **CLOSE}
    )
    data = await resp.json()
    assert (data["validUntil"], data["secretValidUntil"]) == (
        made["validUntil"],
        START_MS + 120_000,
    )


async def test_every_token_answer_carries_the_expiry(jira: World, lane: str) -> None:
    made = await make_token(jira.client)
    token = made["plainTextToken"]
    expected = expiry_value(valid_until(START_MS, 6))
    assert expected == "2026-07-15 12:00:00 UTC"
    for method, path in [
        ("GET", ISSUE),
        ("HEAD", ISSUE),
        ("POST", ISSUE),
        ("GET", "/_test/status/404"),
    ]:
        resp = await jira.client.request(method, path, headers=bearer(token))
        assert resp.headers.getall(EXPIRY_HEADER) == [expected], (method, path)
    # The upstream cannot set it, on any request; password and anonymous answers have none.
    spoof = f"/_test/header?name={EXPIRY_HEADER}&value=2099-01-01%2000:00:00%20UTC"
    assert (await jira.client.get(spoof, headers=bearer(token))).headers.getall(EXPIRY_HEADER) == [
        expected
    ]
    for headers in (ALICE, {}):
        resp = await jira.client.get(spoof, headers=headers)
        assert EXPIRY_HEADER not in resp.headers
    if lane == "fast":
        assert fast_served(jira.client) == 7  # every data-path request above
    # During a rotation's grace, the replaced secret says when it stops.
    await rotate(jira.client, made["id"], {"gracePeriodSeconds": 3600})
    resp = await jira.client.get(ISSUE, headers=bearer(token))
    assert resp.headers[EXPIRY_HEADER] == expiry_value(START_MS + HOUR_MS)
    # A WebSocket handshake carries it too.
    fresh = (await make_token(jira.client))["plainTextToken"]
    async with jira.client.ws_connect("/_test/ws", headers=bearer(fresh)) as ws:
        assert ws._response.headers[EXPIRY_HEADER] == expected


async def test_a_token_that_never_expires_has_no_expiry_header(make_world: MakeWorld) -> None:
    world = await make_world(
        config={"tokens": {"default_validity_months": 0, "max_validity_months": 0}}
    )
    made = await make_token(world.client)
    assert made["validUntil"] is None
    resp = await world.client.get(ISSUE, headers=bearer(made["plainTextToken"]))
    assert resp.status == 200
    assert EXPIRY_HEADER not in resp.headers


# email:TOKEN ----------------------------------------------------------------------------


@pytest.mark.parametrize("product", ["jira", "confluence"])
@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("alice@example.com", 200),
        ("ALICE@Example.com", 200),
        ("alice", 200),
        ("bob@example.com", 401),
        ("alice@example.org", 401),
        ("@", 401),
    ],
)
async def test_email_as_the_user_name(
    make_world: MakeWorld, product: str, name: str, status: int
) -> None:
    world = await make_world(product)
    token = (await make_token(world.client))["plainTextToken"]
    for _ in range(2):  # the first asks the upstream, the second is served from the caches
        resp = await world.client.get(ISSUE, headers=basic(name, token))
        assert resp.status == status
        if status == 200:
            data = await resp.json()
            assert [v for k, v in data["headers"] if k == USER_HEADER] == ["alice"]
    resp = await world.client.get(f"{API}/user/token", headers={**basic(name, token), **CLOSE})
    assert resp.status == status


# Forward auth ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "allowed", "method", "headers", "status"),
    [
        # nginx's subrequest is a GET whatever the client sent: no method said, no read.
        ("read", [], "GET", {}, 403),
        ("read", [], "GET", {"X-Forwarded-Method": "GET"}, 200),
        ("read", [], "GET", {"X-Forwarded-Method": "head"}, 200),
        ("read", [], "GET", {"X-Forwarded-Method": "POST"}, 403),  # Traefik, Caddy
        ("read", [], "GET", {"X-Forwarded-Method": "delete"}, 403),
        ("read", [], "GET", {"X-Forwarded-Method": "GET", "Upgrade": "websocket"}, 403),
        ("read", [], "POST", {}, 403),
        ("read", [], "POST", {"X-Forwarded-Method": "GET"}, 403),  # a client's own copy
        ("write", [], "POST", {"X-Forwarded-Method": "POST"}, 200),
        ("write", ["10.0.0.0/8"], "GET", {}, 401),
        ("write", ["127.0.0.0/8"], "GET", {}, 200),
    ],
)
async def test_forward_auth_applies_the_same_policy(
    jira: World, scope: str, allowed: list[str], method: str, headers: dict[str, str], status: int
) -> None:
    made = await make_token(jira.client, scope=scope, allowedAddresses=allowed)
    resp = await jira.client.request(
        method, "/__apitokenproxy/auth", headers={**bearer(made["plainTextToken"]), **headers}
    )
    assert resp.status == status
    if status == 200:
        assert resp.headers[USER_HEADER] == "alice"
        assert resp.headers[EXPIRY_HEADER] == expiry_value(made["validUntil"])
