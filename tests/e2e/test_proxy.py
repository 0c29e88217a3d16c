"""The data path end to end: what reaches the upstream, and what comes back."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from apitokenproxy.app import COMPONENTS
from apitokenproxy.auth.tokens import format_token

from ..conftest import GatewayTestServer, MakeWorld, World
from ..fakes import GZIPPED, USER_HEADER, basic, bearer, pattern

API = "/rest/de.resolution.apitokenauth/latest"
ALICE = basic("alice", "alice-pw")


async def make_token(world: World, auth: dict[str, str] = ALICE, **extra: Any) -> dict[str, Any]:
    resp = await world.client.post(
        f"{API}/user/token", json={"tokenDescription": "t", **extra}, headers=auth
    )
    assert resp.status == 200, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def echo(world: World, path: str = "/rest/api/2/issue/X-1", **kwargs: Any) -> dict[str, Any]:
    method = kwargs.pop("method", "GET")
    resp = await world.client.request(method, path, **kwargs)
    assert resp.status == 200, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


def upstream_headers(data: dict[str, Any], name: str) -> list[str]:
    wanted = name.lower().replace("_", "-")
    return [v for k, v in data["headers"] if k.lower().replace("_", "-") == wanted]


def forwarded_requests(world: World, prefix: str = "/rest/api/2/issue") -> int:
    return sum(r.path_qs.startswith(prefix) for r in world.upstream.received)


# Authentication decisions ------------------------------------------------------


async def test_basic_token_becomes_the_trusted_header(jira: World) -> None:
    token = (await make_token(jira))["plainTextToken"]
    data = await echo(jira, headers=basic("alice", token))
    assert upstream_headers(data, USER_HEADER) == ["alice"]
    assert upstream_headers(data, "Authorization") == []


async def test_bearer_token_becomes_the_trusted_header(jira: World) -> None:
    token = (await make_token(jira))["plainTextToken"]
    data = await echo(jira, headers=bearer(token))
    assert upstream_headers(data, USER_HEADER) == ["alice"]
    assert upstream_headers(data, "Authorization") == []


SPOOFS = [
    [("X-Forwarded-User", "admin")],
    [("x-forwarded-user", "admin")],
    [("X_Forwarded_User", "admin")],
    [("X-FORWARDED_USER", "admin")],
    [("X-Forwarded-User", "admin"), ("X-Forwarded-User", "root")],
    [("X-Forwarded-User", "")],
    [("Connection", "X-Forwarded-User"), ("X-Forwarded-User", "admin")],
]


@pytest.mark.parametrize("spoof", SPOOFS, ids=lambda s: "+".join(f"{k}={v}" for k, v in s))
@pytest.mark.parametrize("kind", ["anonymous", "password", "token"])
async def test_client_sent_user_headers_never_reach_the_upstream(
    jira: World, spoof: list[tuple[str, str]], kind: str
) -> None:
    auth: dict[str, str] = {}
    if kind == "password":
        auth = ALICE
    elif kind == "token":
        auth = bearer((await make_token(jira))["plainTextToken"])
    headers = [*auth.items(), *spoof]
    data = await echo(jira, headers=headers)
    assert upstream_headers(data, USER_HEADER) == (["alice"] if kind == "token" else [])


async def test_failed_tokens_are_401_and_never_reach_the_upstream(jira: World) -> None:
    made = await make_token(jira, tokenValidityTimeInMonths=1)
    token = made["plainTextToken"]
    cases = {
        "wrong secret": bearer(format_token(made["id"], "Z" * 32)),
        "unknown id": bearer(format_token(made["id"] + 99, "Z" * 32)),
        "bad checksum": bearer(token[:-1] + ("A" if token[-1] != "A" else "B")),
        "wrong owner": basic("bob", token),
    }
    for name, headers in cases.items():
        resp = await jira.client.get("/rest/api/2/issue/X-1", headers=headers)
        assert resp.status == 401, name
        assert "WWW-Authenticate" in resp.headers
        assert (await resp.json())["status"] == 401
    jira.clock.now = made["validUntil"]
    resp = await jira.client.get("/rest/api/2/issue/X-1", headers=bearer(token))
    assert resp.status == 401
    assert "expired" in (await resp.json())["message"]
    assert forwarded_requests(jira) == 0


async def test_password_basic_passes_through_unchanged_when_allowed(jira: World) -> None:
    data = await echo(jira, headers=ALICE)
    assert upstream_headers(data, "Authorization") == [ALICE["Authorization"]]


async def test_password_basic_is_refused_when_disabled(make_world: MakeWorld) -> None:
    world = await make_world(config={"auth": {"allow_password_basic_auth": False}})
    resp = await world.client.get("/rest/api/2/issue/X-1", headers=ALICE)
    assert resp.status == 401
    assert "create an API token" in (await resp.json())["message"]
    assert forwarded_requests(world) == 0
    # Tokens still work, and still get made with the password on the token API.
    token = (await make_token(world))["plainTextToken"]
    data = await echo(world, headers=basic("alice", token))
    assert upstream_headers(data, USER_HEADER) == ["alice"]


@pytest.mark.parametrize(
    "authorization",
    ["Bearer NjM4OTk2MzQ1OTQ3OlAwmT4Nk8cvEL", 'OAuth oauth_consumer_key="k"', "Negotiate YII="],
)
async def test_credentials_that_are_not_ours_pass_through(jira: World, authorization: str) -> None:
    data = await echo(jira, headers={"Authorization": authorization})
    assert upstream_headers(data, "Authorization") == [authorization]


@pytest.mark.parametrize(
    "authorization",
    ["Basic !!notbase64", "Bearer", "Bearer a b"],
)
async def test_malformed_credentials_are_refused(jira: World, authorization: str) -> None:
    resp = await jira.client.get("/rest/api/2/issue/X-1", headers={"Authorization": authorization})
    assert resp.status == 401
    assert forwarded_requests(jira) == 0


async def test_shared_secret_is_injected_and_client_copies_stripped(make_world: MakeWorld) -> None:
    world = await make_world(
        config={"upstream": {"shared_secret_header": "X-Proxy-Secret", "shared_secret": "s3"}}
    )
    data = await echo(world, headers={"X-Proxy-Secret": "guess", "x_proxy_secret": "guess2"})
    assert upstream_headers(data, "X-Proxy-Secret") == ["s3"]


async def test_last_accessed_is_batched(jira: World) -> None:
    made = await make_token(jira)
    jira.clock.advance(7_000)
    for _ in range(5):
        await echo(jira, headers=bearer(made["plainTextToken"]))
    record = await jira.client.app[COMPONENTS].store.get(made["id"])
    assert record is not None and record.last_accessed == 0  # not written per request
    await jira.client.app[COMPONENTS].last_accessed.flush()
    record = await jira.client.app[COMPONENTS].store.get(made["id"])
    assert record is not None and record.last_accessed == made["created"] + 7_000


async def test_hot_path_needs_no_store(jira: World) -> None:
    token = (await make_token(jira))["plainTextToken"]
    await echo(jira, headers=bearer(token))
    await jira.client.app[COMPONENTS].store.close()  # any query from now on would fail
    data = await echo(jira, headers=bearer(token))
    assert upstream_headers(data, USER_HEADER) == ["alice"]


# Throttling ------------------------------------------------------------------


async def test_failures_from_one_address_are_throttled(make_world: MakeWorld) -> None:
    world = await make_world(config={"auth": {"throttle": {"max_failures": 3}}})
    bad = bearer(format_token(12345, "Q" * 32))
    statuses = [
        (await world.client.get("/rest/api/2/issue/X-1", headers=bad)).status for _ in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]
    resp = await world.client.get("/rest/api/2/issue/X-1", headers=bad)
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert (await resp.json())["error"] == "too_many_requests"
    # Anonymous traffic from that address is not a token attempt and still flows.
    assert (await world.client.get("/rest/api/2/issue/X-1")).status == 200


async def test_guessing_for_a_user_cannot_lock_out_their_own_token(make_world: MakeWorld) -> None:
    world = await make_world(
        config={
            "auth": {"throttle": {"max_failures": 3}},
            "proxy": {"trusted_proxies": ["127.0.0.0/8"]},
        }
    )
    made = await make_token(world)
    # An attacker spreads guesses for alice over many addresses (through a
    # trusted load balancer), so the per-address limit never trips.
    for i in range(6):
        resp = await world.client.get(
            "/rest/api/2/issue/X-1",
            headers={**basic("alice", format_token(made["id"] + 1 + i, "Q" * 32)),
                     "X-Forwarded-For": f"203.0.113.{i}"},
        )  # fmt: skip
        assert resp.status in (401, 429)
    assert resp.status == 429
    # Alice's own token, never used before (so not cached), still gets through.
    resp = await world.client.get(
        "/rest/api/2/issue/X-1",
        headers={**basic("alice", made["plainTextToken"]), "X-Forwarded-For": "198.51.100.7"},
    )
    assert resp.status == 200


async def test_forged_forwarded_for_does_not_dodge_the_address_limit(
    make_world: MakeWorld,
) -> None:
    world = await make_world(config={"auth": {"throttle": {"max_failures": 2}}})
    bad = bearer(format_token(777, "Q" * 32))
    statuses = []
    for i in range(4):
        resp = await world.client.get(
            "/rest/api/2/issue/X-1", headers={**bad, "X-Forwarded-For": f"10.0.0.{i}"}
        )
        statuses.append(resp.status)
    assert statuses == [401, 401, 429, 429]


# Reverse-proxy correctness ------------------------------------------------------


async def test_forwarded_headers_from_an_untrusted_peer_are_replaced(jira: World) -> None:
    data = await echo(
        jira,
        headers={
            "X-Forwarded-For": "6.6.6.6",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "evil.example",
            "Forwarded": "for=6.6.6.6",
        },
    )
    assert upstream_headers(data, "X-Forwarded-For") == ["127.0.0.1"]
    assert upstream_headers(data, "X-Forwarded-Proto") == ["http"]
    assert upstream_headers(data, "X-Forwarded-Host") == [f"127.0.0.1:{jira.client.port}"]
    assert upstream_headers(data, "Forwarded") == []


async def test_forwarded_headers_from_a_trusted_peer_are_extended(make_world: MakeWorld) -> None:
    world = await make_world(config={"proxy": {"trusted_proxies": ["127.0.0.1/32"]}})
    data = await echo(
        world,
        headers={
            "X-Forwarded-For": "203.0.113.9, 10.1.1.1",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "jira.example.com",
        },
    )
    assert upstream_headers(data, "X-Forwarded-For") == ["203.0.113.9, 10.1.1.1, 127.0.0.1"]
    assert upstream_headers(data, "X-Forwarded-Proto") == ["https"]
    assert upstream_headers(data, "X-Forwarded-Host") == ["jira.example.com"]


@pytest.mark.parametrize(
    "path",
    [
        "/rest/api/2/search?jql=project%20%3D%20X%20AND%20text%20~%20%22a%2Fb%22",
        "/rest/api/2/issue/X%2F1?expand=a,b&x=%2e%2e",
        "/secure/attachment/10000/a%20b%2Bc.pdf",
        "/plugins/servlet/x;jsessionid=ABC?q=1&q=2",
        "/rest/api/2/issue/%E2%9C%93",
    ],
)
async def test_raw_path_and_query_reach_the_upstream_byte_for_byte(jira: World, path: str) -> None:
    # A raw socket, because HTTP client libraries re-quote what they are given.
    assert jira.client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", jira.client.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    response = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body)["raw_path"] == path


async def test_hop_by_hop_headers_are_removed_both_ways(jira: World) -> None:
    resp = await jira.client.get(
        "/_test/cookies",
        headers={"Connection": "keep-alive, X-Hop", "X-Hop": "1", "Keep-Alive": "timeout=1",
                 "TE": "trailers", "Proxy-Authorization": "Basic eA==", "X-End": "2"},
    )  # fmt: skip
    assert resp.status == 200
    assert resp.headers.getall("Set-Cookie") == [
        "JSESSIONID=abc; Path=/; HttpOnly",
        "atlassian.xsrf.token=xyz; Path=/",
    ]
    assert "X-Internal-Hop" not in resp.headers
    assert "Keep-Alive" not in resp.headers
    sent = dict(jira.upstream.received[-1].headers)
    assert "X-Hop" not in sent and "TE" not in sent and "Proxy-Authorization" not in sent
    assert "Keep-Alive" not in sent
    assert sent["X-End"] == "2"


async def test_compressed_bodies_pass_through_compressed(jira: World) -> None:
    resp = await jira.client.get(
        "/_test/gzip", headers={"Accept-Encoding": "gzip"}, auto_decompress=False
    )
    assert resp.headers["Content-Encoding"] == "gzip"
    body = await resp.read()
    assert body == GZIPPED
    assert gzip.decompress(body) == b"hello world"
    sent = dict(jira.upstream.received[-1].headers)
    assert sent["Accept-Encoding"] == "gzip"


async def test_no_headers_are_invented(jira: World) -> None:
    data = await echo(jira, skip_auto_headers=["Accept", "Accept-Encoding", "User-Agent"])
    names = {k.lower() for k, _ in data["headers"]}
    # The request id is the proxy's own, as the forwarding headers are (ops/requestid.py).
    assert names == {
        "host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-request-id"
    }  # fmt: skip


async def test_host_is_the_clients(jira: World) -> None:
    data = await echo(jira, headers={"Host": "jira.example.com"})
    assert upstream_headers(data, "Host") == ["jira.example.com"]


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
async def test_redirects_are_returned_not_followed(jira: World, code: int) -> None:
    resp = await jira.client.get(f"/_test/status/{code}", allow_redirects=False)
    assert resp.status == code
    assert resp.headers["Location"] == "/elsewhere"


async def test_head_204_and_304_have_no_body(jira: World) -> None:
    for path, status in [("/_test/status/204", 204), ("/_test/status/304", 304)]:
        resp = await jira.client.get(path)
        assert resp.status == status
        assert await resp.read() == b""
    resp = await jira.client.head("/_test/download?size=5000&length=1")
    assert resp.status == 200
    assert resp.headers["Content-Length"] == "5000"
    assert await resp.read() == b""


async def _generated(size: int, chunk: int = 256 * 1024) -> AsyncIterator[bytes]:
    sent = 0
    while sent < size:
        part = min(chunk, size - sent)
        yield pattern(sent, part)
        sent += part


def _pattern_sha256(size: int) -> str:
    digest = hashlib.sha256()
    for offset in range(0, size, 1 << 20):
        digest.update(pattern(offset, min(1 << 20, size - offset)))
    return digest.hexdigest()


LARGE = 64 * 1024 * 1024


async def test_large_bodies_stream_both_ways_in_bounded_memory(jira: World) -> None:
    token = (await make_token(jira))["plainTextToken"]
    tracemalloc.start()
    try:
        resp = await jira.client.put(
            "/rest/api/2/attachment", data=_generated(LARGE), headers=bearer(token)
        )
        uploaded = await resp.json()
        _, upload_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()

        resp = await jira.client.get(f"/_test/download?size={LARGE}", headers=bearer(token))
        digest, size = hashlib.sha256(), 0
        async for chunk in resp.content.iter_chunked(1 << 20):
            digest.update(chunk)
            size += len(chunk)
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    expected = _pattern_sha256(LARGE)
    assert (uploaded["body_length"], uploaded["body_sha256"]) == (LARGE, expected)
    assert (size, digest.hexdigest()) == (LARGE, expected)
    # Client, proxy and upstream share this process; all of them together
    # held far less than the 64 MiB that went through.
    assert upload_peak < 16 * 1024 * 1024, upload_peak
    assert download_peak < 16 * 1024 * 1024, download_peak


async def test_request_body_limit(make_world: MakeWorld) -> None:
    world = await make_world(config={"proxy": {"max_request_body_mb": 1}})
    resp = await world.client.post(
        "/rest/api/2/attachment", data=io.BytesIO(b"x" * (2 * 1024 * 1024))
    )
    assert resp.status == 413
    assert (await resp.json())["status"] == 413
    assert forwarded_requests(world, "/rest/api/2/attachment") == 0
    resp = await world.client.post("/rest/api/2/attachment", data=b"x" * 1000)
    assert resp.status == 200


async def test_chunked_request_over_the_limit_is_cut_off(make_world: MakeWorld) -> None:
    world = await make_world(config={"proxy": {"max_request_body_mb": 1}})
    resp = await world.client.post(
        "/rest/api/2/attachment", data=_generated(4 * 1024 * 1024, 64 * 1024)
    )
    assert resp.status == 413
    assert (await resp.json())["error"] == "payload_too_large"
    assert (await world.client.get("/rest/api/2/issue/X-1")).status == 200


# Expect: 100-continue -------------------------------------------------------------


async def _raw_exchange(port: int, head: bytes, body: bytes | None) -> tuple[bytes, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        rest = b""
        if body is not None and first.startswith(b"HTTP/1.1 100"):
            writer.write(body)
            await writer.drain()
            rest = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        return first, rest
    finally:
        writer.close()


async def test_expect_continue_is_answered_after_authentication(jira: World) -> None:
    token = (await make_token(jira))["plainTextToken"]
    port = jira.client.port
    assert port is not None
    head = (
        "POST /rest/api/2/issue HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
        "Expect: 100-continue\r\nAuthorization: Bearer {}\r\n\r\n"
    )
    first, _ = await _raw_exchange(port, head.format(format_token(1, "W" * 32)).encode(), b"body")
    assert first.startswith(b"HTTP/1.1 401")
    first, rest = await _raw_exchange(port, head.format(token).encode(), b"body")
    assert first.startswith(b"HTTP/1.1 100 Continue")
    assert rest.startswith(b"HTTP/1.1 200")
    assert forwarded_requests(jira, "/rest/api/2/issue") == 1


# WebSocket -------------------------------------------------------------------------


async def test_websocket_is_proxied_with_the_same_authentication(jira: World) -> None:
    token = (await make_token(jira))["plainTextToken"]
    async with jira.client.ws_connect(
        "/_test/ws", headers={**bearer(token), "X-Forwarded-User": "admin"}, protocols=["synchrony"]
    ) as ws:
        assert ws.protocol == "synchrony"
        hello = await ws.receive_json()
        assert hello == {"user": "alice", "auth": None}
        await ws.send_str("ping")
        assert (await ws.receive()).data == "echo:ping"
        await ws.send_bytes(b"\x00\x01\x02")
        assert (await ws.receive()).data == b"\x02\x01\x00"
        await ws.send_str("close")
        message = await ws.receive()
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert ws.close_code == 4001

    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await jira.client.ws_connect("/_test/ws", headers=bearer(format_token(9, "W" * 32)))
    assert info.value.status == 401


async def test_anonymous_websocket_has_no_user(jira: World) -> None:
    async with jira.client.ws_connect("/_test/ws", headers={"X_Forwarded_User": "admin"}) as ws:
        assert await ws.receive_json() == {"user": None, "auth": None}


# Upstream failures -------------------------------------------------------------------


async def test_refused_upstream_is_502(make_world: MakeWorld) -> None:
    world = await make_world(config={"upstream": {"url": "http://127.0.0.1:9"}})
    resp = await world.client.get("/rest/api/2/issue/X-1")
    assert resp.status == 502
    assert "refused" in (await resp.json())["message"]


async def test_slow_upstream_is_504_and_others_are_served(make_world: MakeWorld) -> None:
    world = await make_world(config={"upstream": {"read_timeout_seconds": 0.3}})
    slow = asyncio.create_task(world.client.get("/_test/slow?seconds=3"))
    fast = await world.client.get("/rest/api/2/issue/X-1")
    assert fast.status == 200
    resp = await slow
    assert resp.status == 504
    assert (await resp.json())["error"] == "upstream_timeout"


async def test_reset_mid_body_cuts_the_client_connection(jira: World) -> None:
    resp = await jira.client.get("/_test/reset")
    assert resp.status == 200
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()
    assert (await jira.client.get("/rest/api/2/issue/X-1")).status == 200


async def test_garbage_from_the_upstream_is_502(aiohttp_client: Any, make_world: MakeWorld) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SMTP READY\r\n\x00\x01garbage\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        world = await make_world(config={"upstream": {"url": f"http://127.0.0.1:{port}"}})
        resp = await world.client.get("/rest/api/2/issue/X-1")
        assert resp.status == 502
        assert (await resp.json())["error"] == "upstream_unavailable"
    finally:
        server.close()
        await server.wait_closed()


# Health, readiness, and a second worker ---------------------------------------------------


async def test_health_and_readiness(jira: World) -> None:
    resp = await jira.client.get("/__apitokenproxy/health")
    assert (resp.status, await resp.json()) == (200, {"status": "ok"})
    resp = await jira.client.get("/__apitokenproxy/ready")
    assert resp.status == 200
    await jira.client.app[COMPONENTS].store.close()
    resp = await jira.client.get("/__apitokenproxy/ready")
    assert resp.status == 503
    assert (await resp.json())["error"] == "not_ready"
    assert forwarded_requests(jira, "/__apitokenproxy") == 0


async def test_revocation_reaches_a_second_worker(jira: World, aiohttp_client: Any) -> None:
    from apitokenproxy.app import create_app

    second = await aiohttp_client(GatewayTestServer(create_app(jira.config, clock=jira.clock)))
    made = await make_token(jira)
    token = bearer(made["plainTextToken"])
    assert (await second.get("/rest/api/2/issue/X-1", headers=token)).status == 200  # now cached
    resp = await jira.client.delete(f"{API}/user/token/{made['id']}", headers=ALICE)
    assert resp.status == 204
    assert (await jira.client.get("/rest/api/2/issue/X-1", headers=token)).status == 401
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while (await second.get("/rest/api/2/issue/X-1", headers=token)).status == 200:
        assert loop.time() < deadline, "the second worker never noticed the revocation"
        await asyncio.sleep(0.05)


async def test_token_api_paths_are_never_forwarded(jira: World) -> None:
    resp = await jira.client.get(f"{API}/nope", headers=ALICE)
    assert resp.status == 404
    assert forwarded_requests(jira, API) == 0


async def test_an_absolute_form_target_is_forwarded_as_its_path_with_the_hosts_host(
    jira: World,
) -> None:
    # Red team F5: the aiohttp lane took X-Forwarded-Host from the target's authority.
    reader, writer = await asyncio.open_connection(jira.client.host, jira.client.port)
    writer.write(
        b"GET http://evil.example/rest/api/2/issue/X-1?a=1 HTTP/1.1\r\n"
        b"Host: jira.example.com\r\nConnection: close\r\n\r\n"
    )
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 ")
    (seen,) = jira.upstream.received
    headers = {k.lower(): v for k, v in seen.headers}
    assert seen.path_qs == "/rest/api/2/issue/X-1?a=1"
    assert (headers["host"], headers["x-forwarded-host"]) == ("jira.example.com",) * 2


async def test_data_requests_after_token_api_calls_run_in_the_lane_under_test(
    make_world: MakeWorld, lane: str
) -> None:
    # The harness closes connections after the proxy's own calls (conftest's
    # own_calls_close); without that, a "fast" test would be served by aiohttp.
    world = await make_world("jira")
    token = (await make_token(world))["plainTextToken"]
    fast = world.client.app[COMPONENTS].fast_lane
    before = fast.served
    for _ in range(3):
        await echo(world, headers=bearer(token))
    assert fast.served - before == (3 if lane == "fast" else 0)
