"""The access log end to end, on both lanes and both stores: one line per request,
with who, what, why refused, how fast, and never a secret."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from apitokenproxy.app import COMPONENTS, create_app
from apitokenproxy.auth.tokens import format_token
from apitokenproxy.config import config_from_dict
from apitokenproxy.server import start_site

from ..conftest import LANES, FakeClock, MakeWorld, World, base_config, deep_merge
from ..fakes import JIRA_USERS, FakeUpstream, basic, bearer

API = "/rest/de.resolution.apitokenauth/latest"
ALICE = basic("alice", "alice-pw")
ISSUE = "/rest/api/2/issue/X-1"
DAY_MS = 24 * 3600 * 1000


async def logged_world(make_world: MakeWorld, **config: Any) -> World:
    world = await make_world(config={"logging": {"access_log": True, "format": "json"}, **config})
    log = world.client.server.app[COMPONENTS].access_log
    log.stream = io.StringIO()
    return world


def lines(world: World) -> list[dict[str, Any]]:
    """Every line logged so far (and forget them)."""
    log = world.client.server.app[COMPONENTS].access_log
    log.flush()
    assert isinstance(log.stream, io.StringIO)
    text = log.stream.getvalue()
    log.stream.seek(0)
    log.stream.truncate()
    return [json.loads(line) for line in text.splitlines()]


async def make_token(world: World, **extra: Any) -> dict[str, Any]:
    # The token API is aiohttp's, and so is the connection from then on: closed,
    # so that the next request starts in the lane under test.
    resp = await world.client.post(
        f"{API}/user/token",
        json={"tokenDescription": "t", **extra},
        headers={**ALICE, "Connection": "close"},
    )
    assert resp.status == 200, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def test_a_token_request_is_one_line_with_its_user_token_and_id(
    make_world: MakeWorld, lane: str
) -> None:
    world = await logged_world(make_world)
    token = await make_token(world)
    lines(world)
    resp = await world.client.get(
        ISSUE + "?jql=secret", headers={**bearer(token["plainTextToken"]), "X-Request-Id": "job-7"}
    )
    assert resp.status == 200
    assert resp.headers.getall("X-Request-Id") == ["job-7"]
    sent = dict(world.upstream.received[-1].headers)
    assert sent["X-Request-Id"] == "job-7"
    [entry] = lines(world)
    assert entry["ms"] >= entry["upstream_ms"] >= 0
    assert entry["bytes_out"] > 0
    del entry["time"], entry["ms"], entry["upstream_ms"], entry["bytes_out"], entry["client"]
    assert entry == {
        "method": "GET", "path": ISSUE, "status": 200, "bytes_in": 0, "lane": lane,
        "auth": "token", "reason": None, "user": "alice", "token_id": token["id"],
        "request_id": "job-7",
    }  # fmt: skip


async def test_the_token_api_logs_its_caller(make_world: MakeWorld) -> None:
    world = await logged_world(make_world)
    token = await make_token(world)
    [created] = lines(world)
    assert (created["auth"], created["user"], created["status"]) == ("password", "alice", 200)
    resp = await world.client.get(f"{API}/user/token", headers=bearer(token["plainTextToken"]))
    assert resp.status == 200
    [listed] = lines(world)
    assert (listed["auth"], listed["user"], listed["token_id"]) == ("token", "alice", token["id"])
    assert listed["request_id"] == resp.headers["X-Request-Id"]
    for headers, reason in [
        ({}, "missing"),
        (basic("alice", "wrong"), "password_rejected"),
        ({"Authorization": "Negotiate YII="}, "scheme"),
    ]:
        resp = await world.client.get(f"{API}/user/token", headers=headers)
        assert resp.status == 401
        [refused] = lines(world)
        assert (refused["auth"], refused["reason"]) == ("refused", reason)


def b64(text: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(text.encode()).decode()}


async def test_each_refusal_says_why(make_world: MakeWorld) -> None:
    world = await logged_world(make_world, tokens={"default_validity_months": 1})
    good = await make_token(world)
    doomed = await make_token(world)
    good_token, doomed_token = good["plainTextToken"], doomed["plainTextToken"]
    resp = await world.client.delete(f"{API}/user/token/{doomed['id']}", headers=ALICE)
    assert resp.status == 204
    lines(world)
    last = good_token[-1]
    cases: list[tuple[dict[str, str], int, str, str | None, int | None]] = [
        (bearer(format_token(999_999, "A" * 32)), 401, "unknown", None, 999_999),
        (bearer(good_token[:-1] + ("A" if last != "A" else "B")), 401, "checksum", None, None),
        (bearer("atpx_nonsense"), 401, "malformed", None, None),
        (b64("alice"), 401, "malformed", None, None),
        ({"Authorization": "Basic !!!"}, 401, "malformed", None, None),
        (basic("bob", good_token), 401, "wrong_owner", "bob", good["id"]),
        (bearer(doomed_token), 401, "revoked", None, doomed["id"]),
    ]
    for headers, status, reason, user, token_id in cases:
        resp = await world.client.get(ISSUE, headers=headers)
        assert resp.status == status, reason
        [entry] = lines(world)
        assert (entry["auth"], entry["reason"], entry["user"], entry["token_id"]) == (
            "refused",
            reason,
            user,
            token_id,
        ), reason
        assert entry["upstream_ms"] is None and entry["request_id"] == resp.headers["X-Request-Id"]
    world.clock.advance(40 * DAY_MS)
    resp = await world.client.get(ISSUE, headers=bearer(good_token))
    assert resp.status == 401
    [entry] = lines(world)
    assert (entry["reason"], entry["user"], entry["token_id"]) == ("expired", None, good["id"])


async def test_throttled_and_password_and_anonymous(make_world: MakeWorld) -> None:
    world = await logged_world(make_world, auth={"throttle": {"max_failures": 2}})
    for _ in range(3):
        await world.client.get(ISSUE, headers=bearer(format_token(5, "B" * 32)))
    assert [e["reason"] for e in lines(world)] == ["unknown", "unknown", "throttled"]
    # An unknown user is passed on: the fake Jira treats a failed Basic login as anonymous.
    assert (await world.client.get(ISSUE, headers=basic("carol", "carol-pw"))).status == 200
    [entry] = lines(world)
    assert (entry["auth"], entry["user"], entry["token_id"]) == ("password", "carol", None)
    assert (await world.client.get(ISSUE)).status == 200
    [entry] = lines(world)
    assert (entry["auth"], entry["user"]) == ("anonymous", None)
    resp = await world.client.get(ISSUE, headers={"Authorization": "Negotiate YII="})
    [entry] = lines(world)
    assert (entry["auth"], entry["status"]) == ("other", resp.status)


SECRET = "hunter2-S3cret"
TOKEN_SECRET = format_token(4242, "Q" * 32)


@pytest.mark.parametrize(
    "headers",
    [
        b64(f"alice:{SECRET}"),
        b64(f"alice:{TOKEN_SECRET}"),
        b64(f"{TOKEN_SECRET}:"),
        b64(f"{SECRET}"),
        {"Authorization": f"Bearer {TOKEN_SECRET} {SECRET}"},
        {"Authorization": f"Token {TOKEN_SECRET}"},
        {"Authorization": f"{TOKEN_SECRET}"},
        {"Authorization": f"Basic {SECRET}"},
        {"Authorization": f"Bearer {SECRET},{TOKEN_SECRET}"},
        {"X-Request-Id": TOKEN_SECRET + " " + SECRET},
        {"X-Request-Id": "x" * 200 + SECRET},
    ],
)
async def test_no_secret_reaches_the_log(make_world: MakeWorld, headers: dict[str, str]) -> None:
    world = await logged_world(make_world)
    await world.client.get(
        f"/rest/api/2/search?password={SECRET}&t={TOKEN_SECRET}", headers=headers
    )
    [entry] = lines(world)
    text = json.dumps(entry)
    assert SECRET not in text and TOKEN_SECRET not in text and "QQQQ" not in text


async def test_the_same_requests_log_the_same_fields_on_both_lanes(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    upstream = await aiohttp_server(FakeUpstream("jira", JIRA_USERS).app())
    url = str(upstream.make_url("")).rstrip("/")
    logged: dict[str, list[dict[str, Any]]] = {}
    for lane in LANES:
        raw = deep_merge(
            deep_merge(base_config(url, f"sqlite:///{tmp_path / lane}.db"), LANES[lane]),
            {"logging": {"access_log": True, "format": "json"}},
        )
        app = create_app(config_from_dict(raw), clock=FakeClock())
        runner = await start_site(app, "127.0.0.1", 0)
        log = app[COMPONENTS].access_log
        log.stream = io.StringIO()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            # A connection per request: each starts in the lane under test.
            connector = aiohttp.TCPConnector(force_close=True)
            async with aiohttp.ClientSession(base, connector=connector) as session:
                made = await session.post(
                    f"{API}/user/token", json={"tokenDescription": "t"}, headers=ALICE
                )
                token = (await made.json())["plainTextToken"]
                for i, headers in enumerate(
                    [bearer(token), basic("alice", token), basic("bob", token), {},
                     bearer(token[:-2] + "zz"), basic("alice", "alice-pw")]
                ):  # fmt: skip
                    await session.get(
                        f"{ISSUE}?q={i}", headers={**headers, "X-Request-Id": f"r{i}"}
                    )
                await session.post(
                    ISSUE, data=b"abc", headers={**bearer(token), "X-Request-Id": "p"}
                )
        finally:
            await runner.cleanup()
        log.flush()
        assert isinstance(log.stream, io.StringIO)
        logged[lane] = [json.loads(line) for line in log.stream.getvalue().splitlines()]
    varying = ("time", "ms", "upstream_ms", "bytes_out", "lane")
    for lane, entries in logged.items():
        assert {e["lane"] for e in entries[1:]} == {lane}  # the token API is aiohttp's
        for entry in entries:
            for key in varying:
                entry.pop(key)
            if entry["path"].endswith("/user/token"):
                entry.pop("request_id")  # made by each proxy
    assert len(logged["fast"]) == 8
    assert logged["fast"] == logged["aiohttp"]


@pytest.mark.slow
@pytest.mark.parametrize("fast_path", [True, False], ids=["fast", "aiohttp"])
async def test_durations_are_finer_than_the_event_loops_clock(
    aiohttp_server: Any, tmp_path: Path, fast_path: bool
) -> None:
    # Issue 18, item 4: under uvloop (what serve runs on) the event loop's clock
    # has a millisecond's resolution, and every ms and upstream_ms was a whole
    # number: ms=1.000, upstream_ms=0.000. A microsecond clock almost never is.
    from ..processes import serve_config, start, stop, wait_for

    config, port = await serve_config(
        aiohttp_server, tmp_path, logging={"format": "json"}, proxy={"fast_path": fast_path}
    )
    proc = await start("serve", "--config", str(config))
    try:
        await wait_for(proc, "listening on")
        async with aiohttp.ClientSession() as session:
            for _ in range(30):
                async with session.get(f"http://127.0.0.1:{port}{ISSUE}") as resp:
                    assert resp.status == 200
    finally:
        out = await stop(proc)
    entries = [json.loads(text) for text in out.splitlines() if text.startswith('{"time"')]
    assert len(entries) == 30
    assert all(e["lane"] == ("fast" if fast_path else "aiohttp") for e in entries)
    for field in ("ms", "upstream_ms"):
        values = [e[field] for e in entries]
        whole = [v for v in values if round(v * 1000) % 1000 == 0]
        assert len(whole) < len(values) / 2, (field, values)
