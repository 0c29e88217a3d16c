"""The audit trail end to end: changes made through the REST API and the command line,
read back through GET .../audit and ``apitokenproxy audit``; and lastAccessedFrom."""

from __future__ import annotations

import asyncio
import getpass
import json
from pathlib import Path
from typing import Any

import pytest

from apitokenproxy.app import COMPONENTS
from apitokenproxy.cli import _since, main
from apitokenproxy.store import NewToken, opened
from apitokenproxy.store.audit import Action, How
from apitokenproxy.store.retention import DAY_MS

from ..conftest import START_MS, MakeWorld, World
from ..fakes import SESSION_COOKIE, basic, bearer
from ..processes import write_config

API = "/rest/de.resolution.apitokenauth/latest"
ALICE = basic("alice", "alice-pw")
BOB = basic("bob", "bob-pw")
ADMIN = basic("admin", "admin-pw")
ALICE_KEY = "JIRAUSER10100"
BOB_KEY = "JIRAUSER10105"


async def call(
    world: World, method: str, path: str, auth: dict[str, str], status: int, **kwargs: Any
) -> Any:
    headers = {**auth, **kwargs.pop("headers", {})}
    resp = await world.client.request(method, API + path, headers=headers, **kwargs)
    body = await resp.read()
    assert resp.status == status, body
    return json.loads(body) if body else None


async def audit(world: World, query: str = "", auth: dict[str, str] = ADMIN) -> Any:
    return await call(world, "GET", f"/audit{query}", auth, 200)


def who(entry: dict[str, Any]) -> tuple[Any, ...]:
    return (
        entry["event"],
        entry["actorUserName"],
        entry["actorUserKey"],
        entry["actorAuthentication"],
        entry["tokenForUserKey"],
        entry["tokenId"],
    )


async def test_every_change_through_the_api_is_one_event_with_its_actor(jira: World) -> None:
    made = await call(
        jira, "POST", "/user/token", ALICE, 200,
        json={"tokenDescription": "CI"}, headers={"X-Request-Id": "req-create-1"},
    )  # fmt: skip
    token = bearer(made["plainTextToken"])
    jira.clock.advance(1000)
    await call(jira, "PATCH", f"/user/token/{made['id']}", token, 200,
               json={"tokenDescription": "CI renamed"})  # fmt: skip
    jira.clock.advance(1000)
    await call(jira, "DELETE", f"/user/token/{made['id']}", ADMIN, 204)
    b1 = await call(jira, "POST", "/user/token", ADMIN, 200,
                    json={"tokenDescription": "nightly", "tokenForUserKey": BOB_KEY})  # fmt: skip
    b2 = await call(jira, "POST", "/user/token", BOB, 200, json={"tokenDescription": "mine"})
    jira.clock.advance(1000)
    assert await call(jira, "DELETE", f"/user/token/deleteAllFor/{BOB_KEY}", ADMIN, 200) == {
        "deletedTokens": 2
    }
    # Refused and failed calls change nothing and leave nothing.
    await call(jira, "DELETE", f"/user/token/{b1['id']}", ALICE, 404)
    await call(jira, "DELETE", f"/user/token/deleteAllFor/{ALICE_KEY}", ALICE, 403)
    await call(jira, "PATCH", "/user/token/999999", ALICE, 404, json={"tokenDescription": "x"})

    data = await audit(jira)
    assert [who(e) for e in data["content"]] == [
        ("revoked-all", "admin", "admin", "password", BOB_KEY, b2["id"]),
        ("revoked-all", "admin", "admin", "password", BOB_KEY, b1["id"]),
        ("created", "bob", BOB_KEY, "password", BOB_KEY, b2["id"]),
        ("created", "admin", "admin", "password", BOB_KEY, b1["id"]),
        ("revoked", "admin", "admin", "password", ALICE_KEY, made["id"]),
        ("renamed", "alice", ALICE_KEY, "token", ALICE_KEY, made["id"]),
        ("created", "alice", ALICE_KEY, "password", ALICE_KEY, made["id"]),
    ]
    assert data["total"] == 7
    created = data["content"][-1]
    assert created == {
        "actorAuthentication": "password",
        "actorUserKey": ALICE_KEY,
        "actorUserName": "alice",
        "at": START_MS,
        "clientAddress": "127.0.0.1",
        "description": "CI",
        "event": "created",
        "id": created["id"],
        "requestId": "req-create-1",
        "tokenForUserKey": ALICE_KEY,
        "tokenId": made["id"],
    }
    # A revoked token's description outlives it in the trail.
    assert [e["description"] for e in data["content"][4:6]] == ["CI renamed", "CI renamed"]
    assert [e["at"] for e in data["content"][4:6]] == [START_MS + 2000, START_MS + 1000]
    # Without an X-Request-Id, each request's own id (the one its answer carried
    # and its access-log line has): five requests, six events.
    made_here = [e["requestId"] for e in data["content"][:-1]]
    assert None not in made_here
    assert len(set(made_here)) == 5
    assert made_here[0] == made_here[1]  # both tokens of one deleteAllFor


async def test_rotations_and_policy_changes_are_audited_with_how_the_actor_signed_in(
    make_world: MakeWorld,
) -> None:
    world = await make_world()
    origin = str(world.client.make_url("").origin())
    cookie = f"atlassian.xsrf.token=abc; {SESSION_COOKIE}={world.upstream.sign_in('alice')}"
    browser = {"Cookie": cookie, "X-Atlassian-Token": "no-check", "Origin": origin}
    made = await call(world, "POST", "/user/token", ALICE, 200, json={"tokenDescription": "CI"})
    world.clock.advance(1000)
    rotated = await call(world, "POST", f"/user/token/{made['id']}/rotate", browser, 200,
                         json={"gracePeriodSeconds": 60}, headers={"X-Request-Id": "rot-1"})  # fmt: skip
    world.clock.advance(1000)
    token = bearer(rotated["plainTextToken"])
    await call(world, "PATCH", f"/user/token/{made['id']}", token, 200, json={"scope": "read"})
    world.clock.advance(1000)
    await call(world, "PATCH", f"/user/token/{made['id']}", ALICE, 200,
               json={"tokenDescription": "CI read", "allowedAddresses": ["10.0.0.0/8"]})  # fmt: skip
    # Refused changes leave nothing: a widening, and someone else's token.
    await call(world, "PATCH", f"/user/token/{made['id']}", ALICE, 400, json={"scope": "write"})
    await call(world, "POST", f"/user/token/{made['id']}/rotate", BOB, 404, json={})

    data = await audit(world)
    assert [(*who(e), e["at"]) for e in data["content"]] == [
        ("policy_changed", "alice", ALICE_KEY, "password", ALICE_KEY, made["id"], START_MS + 3000),
        ("renamed", "alice", ALICE_KEY, "password", ALICE_KEY, made["id"], START_MS + 3000),
        ("policy_changed", "alice", ALICE_KEY, "token", ALICE_KEY, made["id"], START_MS + 2000),
        ("rotated", "alice", ALICE_KEY, "session", ALICE_KEY, made["id"], START_MS + 1000),
        ("created", "alice", ALICE_KEY, "password", ALICE_KEY, made["id"], START_MS),
    ]
    assert data["content"][3]["requestId"] == "rot-1"
    assert data["content"][0]["description"] == "CI read"


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        (["3f2b8c1e-7a4d-4e1b-9c2a-0d5e6f7a8b9c"], "3f2b8c1e-7a4d-4e1b-9c2a-0d5e6f7a8b9c"),
        (["x" * 129], "answered"),
        (["two words"], "answered"),
        (["a\u00e9"], "answered"),
        (["a", "b"], "answered"),
        # A token in the wrong header is replaced like any other unfit id.
        (["atpx_1_" + "A" * 38], "answered"),
    ],
)
async def test_the_request_id_is_the_one_answered(
    make_world: MakeWorld, sent: list[str], kept: str | None
) -> None:
    """A sane X-Request-Id is kept; for any other (a token's included) the id the
    proxy made, and answered with, is."""
    world = await make_world()
    headers = [("X-Request-Id", value) for value in sent]
    resp = await world.client.post(
        f"{API}/user/token",
        json={"tokenDescription": "t"},
        headers=[*ALICE.items(), *headers],
    )
    assert resp.status == 200
    answered = resp.headers["X-Request-Id"]
    [entry] = (await audit(world))["content"]
    if kept == "answered":
        assert answered not in sent and "atpx_" not in answered
        assert entry["requestId"] == answered
    else:
        assert entry["requestId"] == kept


async def test_the_client_address_is_the_one_forwarding_decides(make_world: MakeWorld) -> None:
    world = await make_world(config={"proxy": {"trusted_proxies": ["127.0.0.1/32"]}})
    await call(world, "POST", "/user/token", ALICE, 200, json={"tokenDescription": "t"},
               headers={"X-Forwarded-For": "198.51.100.23"})  # fmt: skip
    [entry] = (await audit(world))["content"]
    assert entry["clientAddress"] == "198.51.100.23"


async def test_the_audit_resource_is_for_sysadmins_only(jira: World) -> None:
    await call(jira, "POST", "/user/token", ALICE, 200, json={"tokenDescription": "t"})
    refused = await call(jira, "GET", "/audit", ALICE, 403)
    assert "audit trail" in refused["message"]
    await call(jira, "GET", "/audit", {}, 401)
    assert (await audit(jira))["total"] == 1


async def test_the_audit_resource_pages_like_tokens_by_filter(jira: World) -> None:
    for i in range(5):
        await call(jira, "POST", "/user/token", ALICE, 200, json={"tokenDescription": f"t{i}"})
        jira.clock.advance(1000)
    await call(jira, "POST", "/user/token", BOB, 200, json={"tokenDescription": "b"})
    base = str(jira.client.make_url("")).rstrip("/")
    data = await audit(jira, f"?userKey={ALICE_KEY}&since={START_MS + 1000}&page=1&limit=2")
    assert [e["description"] for e in data["content"]] == ["t2", "t1"]
    link = f"{base}{API}/audit?page={{}}&limit=2&userKey={ALICE_KEY}&since={START_MS + 1000}"
    assert {k: v for k, v in data.items() if k != "content"} == {
        "currentPage": 1,
        "limit": 2,
        "offset": 2,
        "paginationLinks": {
            "baseUrl": base,
            "nextPage": "",
            "previousPage": link.format(0),
        },
        "total": 4,
        "totalPages": 2,
    }
    first = await audit(jira, "?limit=2")
    assert [e["description"] for e in first["content"]] == ["b", "t4"]
    assert first["paginationLinks"]["nextPage"] == f"{base}{API}/audit?page=1&limit=2"
    assert (await audit(jira, "?page=9"))["content"] == []


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("?since=yesterday", "since must be a whole number"),
        ("?since=-5", "since must be a whole number"),
        ("?limit=0", "limit must be a whole number"),
        ("?page=x", "page must be a whole number"),
        ("?userKey=", "userKey must not be empty"),
    ],
)
async def test_bad_audit_queries_are_400(jira: World, query: str, fragment: str) -> None:
    data = await call(jira, "GET", f"/audit{query}", ADMIN, 400)
    assert fragment in data["message"]


# lastAccessedFrom ---------------------------------------------------------------


async def test_last_accessed_from_is_the_latest_use_on_either_lane(make_world: MakeWorld) -> None:
    world = await make_world(config={"proxy": {"trusted_proxies": ["127.0.0.1/32"]}})
    made = await call(world, "POST", "/user/token", ALICE, 200, json={"tokenDescription": "t"})
    token = bearer(made["plainTextToken"])
    components = world.client.app[COMPONENTS]

    async def use(address: str) -> None:
        world.clock.advance(1000)
        resp = await world.client.get(
            "/rest/api/2/issue/X-1", headers={**token, "X-Forwarded-For": address}
        )
        assert resp.status == 200

    async def listed(query: str = "?expand=lastAccessedFrom") -> dict[str, Any]:
        await components.last_accessed.flush()
        [entry] = await call(world, "GET", f"/user/token{query}", ALICE, 200)
        return entry  # type: ignore[no-any-return]

    assert (await listed())["lastAccessedFrom"] is None  # never used
    await use("192.0.2.10")  # the first use: verified, then cached
    assert (await listed())["lastAccessedFrom"] == "192.0.2.10"
    await use("2001:db8::11")  # answered from the cache, without awaiting
    await use("198.51.100.12")
    entry = await listed()
    assert (entry["lastAccessedFrom"], entry["lastAccessed"]) == ("198.51.100.12", START_MS + 3000)
    # Without the expansion, exactly the seed's fields.
    assert set(await listed("")) == {"created", "description", "id", "lastAccessed", "validUntil"}
    # Token uses are counted, not audited.
    assert [e["event"] for e in (await audit(world))["content"]] == ["created"]
    page = await call(
        world, "GET", "/user/tokensByFilter?notValidAfter=-1&expand=lastAccessedFrom", ADMIN, 200
    )
    assert page["content"][0]["lastAccessedFrom"] == "198.51.100.12"


async def test_an_unknown_expansion_is_400(jira: World) -> None:
    data = await call(jira, "GET", "/user/token?expand=everything", ALICE, 400)
    assert "expand accepts lastAccessedFrom" in data["message"]


# The command line -----------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_cli_changes_are_audited_and_shown_as_text_and_json(
    tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path, store={"url": store_url}))
    made = json.loads(run(capsys, "tokens", "create", "-c", config, "--user-key", ALICE_KEY,
                          "--user-name", "alice", "--description", "CI"))  # fmt: skip
    other = json.loads(run(capsys, "tokens", "create", "-c", config, "--user-key", BOB_KEY,
                           "--user-name", "bob", "--description", "nightly"))  # fmt: skip

    async def used() -> None:
        async with opened(store_url) as store:
            await store.record_access({other["id"]: (START_MS, "192.0.2.44")})

    asyncio.run(used())
    listing = json.loads(run(capsys, "tokens", "list", "-c", config))
    assert {t["id"]: t["lastAccessedFrom"] for t in listing} == {
        made["id"]: None,
        other["id"]: "192.0.2.44",
    }
    run(capsys, "tokens", "revoke", "-c", config, str(made["id"]))
    run(capsys, "tokens", "revoke-all", "-c", config, "--user-key", BOB_KEY)
    assert main(["tokens", "revoke", "-c", config, str(made["id"])]) == 1  # nothing to revoke

    events = json.loads(run(capsys, "audit", "-c", config, "--json"))
    operator = getpass.getuser()
    assert [who(e) for e in events] == [
        ("revoked-all", operator, "apitokenproxy-cli", "cli", BOB_KEY, other["id"]),
        ("revoked", operator, "apitokenproxy-cli", "cli", ALICE_KEY, made["id"]),
        ("created", operator, "apitokenproxy-cli", "cli", BOB_KEY, other["id"]),
        ("created", operator, "apitokenproxy-cli", "cli", ALICE_KEY, made["id"]),
    ]
    assert {e["clientAddress"] for e in events} == {None}

    lines = run(capsys, "audit", "-c", config).splitlines()
    assert len(lines) == 4
    assert lines[1].endswith(
        f"UTC  revoked token {made['id']} 'CI' of {ALICE_KEY} by {operator} (apitokenproxy-cli, cli)"
    )
    only_alice = json.loads(run(capsys, "audit", "-c", config, "--user-key", ALICE_KEY, "--json"))
    assert [e["event"] for e in only_alice] == ["revoked", "created"]
    assert run(capsys, "audit", "-c", config, "--since", "2999-01-01") == ""
    assert len(json.loads(run(capsys, "audit", "-c", config, "--since", "2000-01-01T00:00+02:00",
                              "--json"))) == 4  # fmt: skip


def test_cli_audit_refuses_a_bad_date(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(write_config(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", "-c", config, "--since", "last tuesday"])
    assert exit_info.value.code == 2
    assert "not a date: 'last tuesday'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2026-01-15", START_MS - 12 * 3_600_000),
        ("2026-01-15T12:00", START_MS),
        ("2026-01-15T12:00:00Z", START_MS),
        ("2026-01-15T13:00+01:00", START_MS),
    ],
)
def test_since_is_utc_unless_it_says_otherwise(text: str, ms: int) -> None:
    assert _since(text) == ms


# Retention ------------------------------------------------------------------------


async def test_the_proxy_prunes_with_the_configured_retention(
    make_world: MakeWorld, store_url: str
) -> None:
    token = NewToken(ALICE_KEY, "alice", "old", "$argon2id$x", START_MS, None, ALICE_KEY)
    async with opened(store_url) as store:
        for age_days in (40, 31, 29):
            at = START_MS - age_days * DAY_MS
            await store.create(token, Action(at=at, actor_key="k", actor_name="n", how=How.CLI))
    world = await make_world(config={"audit": {"retention_days": 30}})
    # The proxy's own pruner (its first run waits a minute after start-up).
    assert await world.client.app[COMPONENTS].retention.prune() == 2
    [kept] = (await audit(world))["content"]
    assert kept["at"] == START_MS - 29 * DAY_MS
