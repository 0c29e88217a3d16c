"""The fast lane: which requests it serves, and how it hands the rest to aiohttp."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from apitokenproxy.proxy.fastlane import FastLane
from apitokenproxy.proxy.heads import FAST_BODY_MAX

from ..conftest import MakeWorld, World
from ..fakes import bearer

API = "/rest/de.resolution.apitokenauth/latest"


@pytest.fixture
async def jira(make_world: MakeWorld) -> World:
    return await make_world(config={"proxy": {"fast_path": True}})


def lane_of(world: World) -> FastLane:
    fast = world.client.server.runner.fast  # type: ignore[union-attr]
    assert isinstance(fast, FastLane)
    return fast


async def raw(world: World, data: bytes, *, wait: float = 5.0) -> bytes:
    """Send bytes on one connection and read until the proxy closes it."""
    reader, writer = await asyncio.open_connection(world.client.host, world.client.port)
    try:
        writer.write(data)
        return await asyncio.wait_for(reader.read(), wait)
    finally:
        writer.close()


async def test_plain_requests_are_served_here_and_the_rest_handed_off(jira: World) -> None:
    fast = lane_of(jira)
    async with aiohttp.ClientSession(str(jira.client.make_url(""))) as http:
        for _ in range(3):
            async with http.get("/rest/api/2/issue/X-1") as resp:
                assert resp.status == 200
    assert (fast.served, fast.handed_off) == (3, 0)
    async with aiohttp.ClientSession(str(jira.client.make_url(""))) as http:
        async with http.get(f"{API}/user/token") as resp:  # the token API is aiohttp's
            assert resp.status == 401
        async with http.get("/rest/api/2/issue/X-1") as resp:  # and so is this connection now
            assert resp.status == 200
    assert (fast.served, fast.handed_off) == (3, 1)


@pytest.mark.parametrize(
    ("head", "status_line", "why"),
    [
        (b"GET /x HTTP/1.0\r\nHost: j\r\n\r\n", b'HTTP/1.0 200 OK', "HTTP/1.0"),
        (b"PROPFIND /x HTTP/1.1\r\nHost: j\r\nConnection: close\r\n\r\n", b'HTTP/1.1 200 OK', "another method"),
        (b"POST /x HTTP/1.1\r\nHost: j\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n", b'HTTP/1.1 200 OK', "chunked"),
        (b"POST /x HTTP/1.1\r\nHost: j\r\nExpect: 100-continue\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", b'HTTP/1.1 100 Continue', "Expect"),
        (b"GET /REST/DE.RESOLUTION.APITOKENAUTH/x HTTP/1.1\r\nHost: j\r\nConnection: close\r\n\r\n", b'HTTP/1.1 200 OK', "token API, any case"),
        (b"GET /__apitokenproxy/health HTTP/1.1\r\nHost: j\r\nConnection: close\r\n\r\n", b'HTTP/1.1 200 OK', "health"),
        (b"GET /a%2Fb HTTP/1.1\r\nHost: j\r\nConnection: close\r\n\r\n", b'HTTP/1.1 200 OK', "percent in the path"),
        (b"GET /a/../b HTTP/1.1\r\nHost: j\r\nConnection: close\r\n\r\n", b'HTTP/1.1 200 OK', "dot segment"),
        (b"GET /x HTTP/1.1\r\nHost: j\r\nX-A: " + b"a" * 9000 + b"\r\nConnection: close\r\n\r\n", b'HTTP/1.0 400 Bad Request', "long line"),
        (b"GET /x HTTP/1.1\r\nHost: j\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(120)) + b"Connection: close\r\n\r\n", b'HTTP/1.1 200 OK', "many headers"),
        (b"POST /x HTTP/1.1\r\nHost: j\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % (FAST_BODY_MAX + 1) + b"x" * (FAST_BODY_MAX + 1), b'HTTP/1.1 200 OK', "large body"),
    ],
)  # fmt: skip
async def test_what_aiohttp_serves(jira: World, head: bytes, status_line: bytes, why: str) -> None:
    fast = lane_of(jira)
    answer = await raw(jira, head)
    assert answer.split(b"\r\n", 1)[0] == status_line, why
    assert (fast.served, fast.handed_off) == (0, 1), why


async def test_pipelined_requests_are_handed_off_from_the_first_unserved_one(jira: World) -> None:
    fast = lane_of(jira)
    one = b"GET /rest/api/2/issue/A-1 HTTP/1.1\r\nHost: j\r\n\r\n"
    two = b"GET /rest/api/2/issue/B-2 HTTP/1.1\r\nHost: j\r\nConnection: close\r\n\r\n"
    answer = await raw(jira, one + two)
    assert answer.count(b"HTTP/1.1 200 OK") == 2
    assert answer.index(b"/rest/api/2/issue/A-1") < answer.index(b"/rest/api/2/issue/B-2")
    assert [r.path_qs for r in jira.upstream.received] == [
        "/rest/api/2/issue/A-1",
        "/rest/api/2/issue/B-2",
    ]
    assert (fast.served, fast.handed_off) == (0, 1)


async def test_a_request_sent_while_one_is_in_flight_waits_its_turn(jira: World) -> None:
    fast = lane_of(jira)
    reader, writer = await asyncio.open_connection(jira.client.host, jira.client.port)
    try:
        writer.write(b"GET /_test/slow?seconds=0.2 HTTP/1.1\r\nHost: j\r\n\r\n")
        await asyncio.sleep(0.05)
        writer.write(b"GET /rest/api/2/issue/B-2 HTTP/1.1\r\nHost: j\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    assert answer.count(b"HTTP/1.1 200 OK") == 2
    assert fast.served == 2 and fast.handed_off == 0


async def test_what_llhttp_refuses_gets_the_json_400_and_nothing_is_forwarded(jira: World) -> None:
    answer = await raw(jira, b"GET /x HTTP/1.1\r\nHost: j\r\nX-A: a\x01b\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b'"error": "malformed_request"' in body
    assert jira.upstream.received == []


async def test_the_fast_lane_can_be_switched_off(make_world: MakeWorld) -> None:
    world = await make_world(config={"proxy": {"fast_path": False}})
    assert world.client.server.runner.fast is None  # type: ignore[union-attr]
    assert (await world.client.get("/rest/api/2/issue/X-1", headers=bearer("x"))).status == 200


@pytest.mark.parametrize("version", [b"HTTP/0.9", b"HTTP/1.2", b"HTTP/2.0", b"HTTP/3.0"])
async def test_only_http_1_0_and_1_1_are_served(make_world: MakeWorld, version: bytes) -> None:
    world = await make_world()
    answer = await raw(world, b"GET /x " + version + b"\r\nHost: j\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b" 400 " in head.split(b"\r\n")[0], answer
    assert b'"error": "' in body
    assert world.upstream.received == []


@pytest.mark.parametrize(
    ("parts", "status"),
    [
        # Red team F1: a read holding only the method used to be dropped, so the
        # request reached aiohttp without it and got a 400.
        ((b"POST ", b"/up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                    b"Connection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), b"200"),
        ((b"GET", b" /rest/de.resolution.apitokenauth/latest/user/token HTTP/1.1\r\n"
                  b"Host: a\r\nConnection: close\r\n\r\n"), b"401"),
        ((b"G", b"ET /x HTTP/1.0\r\nHost: a\r\n\r\n"), b"200"),
    ],
)  # fmt: skip
async def test_a_request_split_anywhere_is_read_whole(
    jira: World, parts: tuple[bytes, ...], status: bytes
) -> None:
    reader, writer = await asyncio.open_connection(jira.client.host, jira.client.port)
    try:
        for part in parts:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.05)
        answer = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    assert answer.split(b" ")[1] == status, answer


async def test_bytes_after_a_closing_request_are_ignored(jira: World) -> None:
    one = b"GET /rest/api/2/issue/A-1 HTTP/1.1\r\nHost: j\r\nConnection: close\r\n\r\n"
    answer = await raw(jira, one + b"GET /rest/api/2/issue/B-2 HTTP/1.1\r\nHost: j\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.count(b"HTTP/1.1 ") == 1
    assert [r.path_qs for r in jira.upstream.received] == ["/rest/api/2/issue/A-1"]
