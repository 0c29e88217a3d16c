"""Slow clients on both lanes: uploads that trickle, answers nobody reads, clients that
leave. None may hold the upstream pool that other clients and the proxy's own calls need."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from apitokenproxy.app import COMPONENTS
from apitokenproxy.proxy.pool import UpstreamPool

from ..conftest import Live, MakeLive
from ..connections import closes_within
from ..fakes import basic, bearer

API = "/rest/de.resolution.apitokenauth/latest"
ISSUE = "/rest/api/2/issue/X-1"
# Far beyond what any step below needs, far below the timeouts the bugs waited for.
PATIENCE = 10.0
# Eight upstream connections (one kept for the proxy's own calls), two per address,
# and bodies that must keep coming: silent for at most a second, or slower than 1 KB/s.
SLOW = {
    "upstream": {"max_connections": 8, "max_connections_per_client": 2,
                 "connect_timeout_seconds": 1},
    "listen": {"body_timeout_seconds": 1, "body_min_rate": 1000, "send_timeout_seconds": 1},
    "auth": {"throttle": {"max_failures": 1000}},
}  # fmt: skip


def pool(live: Live) -> UpstreamPool:
    return live.app[COMPONENTS].pool  # type: ignore[no-any-return]


async def until(condition: Any, what: str) -> None:
    """Wait for ``condition()`` to hold, checking as the loop turns."""
    async with asyncio.timeout(PATIENCE):
        # The pool's counts change in callbacks with no event to wait on: look again.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def connection(
    live: Live, source: str = "127.0.0.1"
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port, local_addr=(source, 0))
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def status_of(reader: asyncio.StreamReader) -> int:
    """The status of the answer on ``reader``, or 0 if the proxy closed without one."""
    try:
        line = await reader.readline()
    except ConnectionError:
        return 0
    return int(line.split()[1]) if line else 0


async def trickle(live: Live, source: str, *, start: int) -> int:
    """An anonymous upload that declares 4 MiB, sends ``start`` bytes, then one a
    second; the status it ends with (0: cut without an answer)."""
    async with connection(live, source) as (reader, writer):
        writer.write(
            b"POST /upload HTTP/1.1\r\nHost: j\r\nContent-Length: %d\r\n\r\n" % (4 << 20)
            + b"x" * start
        )
        answer = asyncio.ensure_future(status_of(reader))
        try:
            while not answer.done():
                with contextlib.suppress(ConnectionError):
                    writer.write(b"x")
                await asyncio.wait((answer,), timeout=1.0)
            return answer.result()
        finally:
            answer.cancel()


async def token(live: Live) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"http://127.0.0.1:{live.port}{API}/user/token",
            json={"tokenDescription": "slow"},
            headers={**basic("alice", "alice-pw"), "Connection": "close"},
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["plainTextToken"])


async def test_trickling_uploads_hold_only_their_share_and_are_cut(make_live: MakeLive) -> None:
    # Issue 18, item 12: uploads trickling a byte at a time took every upstream
    # connection; valid tokens got 503 and the token API 504 (its own calls to the
    # upstream share the pool), for the read timeout.
    live = await make_live(SLOW)
    secret = await token(live)
    # Ten uploads from one address, each past the 256 KiB read before a
    # connection is taken: they stream, so each wants an upstream connection.
    uploads = [
        asyncio.ensure_future(trickle(live, "127.0.0.2", start=300 * 1024)) for _ in range(10)
    ]
    await until(lambda: pool(live).held_by("127.0.0.2") == 2, "two uploads streaming")
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{live.port}"
        async with session.get(url + ISSUE, headers=bearer(secret)) as resp:
            assert resp.status == 200  # another address still has the rest of the pool
        async with session.get(
            f"{url}{API}/user/token", headers=basic("alice", "alice-pw")
        ) as resp:
            assert resp.status == 200, await resp.text()  # a password checked upstream
    statuses = await asyncio.gather(*uploads)
    # Two streamed until too slow (408); the others waited for their address's
    # share, and were refused (429) or cut as too slow while waiting.
    assert statuses.count(408) >= 2, statuses
    assert set(statuses) <= {408, 429}, statuses
    await until(lambda: pool(live).in_use == 0, "every upstream connection free")


async def test_many_addresses_cannot_take_the_proxys_own_connection(make_live: MakeLive) -> None:
    # Seven addresses of trickling uploads fill the clients' share of the pool:
    # the token API's password check still reaches the upstream (the kept slice).
    live = await make_live(SLOW)
    uploads = [
        asyncio.ensure_future(trickle(live, f"127.0.0.{n}", start=300 * 1024))
        for n in range(2, 9)
        for _ in range(2)
    ]
    await until(lambda: pool(live).in_use >= 7, "the clients' share in use")
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"http://127.0.0.1:{live.port}{API}/user/token", headers=basic("alice", "alice-pw")
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()
    await asyncio.gather(*uploads)
    await until(lambda: pool(live).in_use == 0, "every upstream connection free")


async def test_a_slow_body_is_answered_408_on_either_lane(make_live: MakeLive) -> None:
    # A small body (the fast lane reads it whole before forwarding) that stops:
    # a 408 after the body timeout, not the header timeout's silent close.
    live = await make_live({**SLOW, "listen": {**SLOW["listen"], "header_timeout_seconds": 30}})
    async with connection(live) as (reader, writer):
        writer.write(b"POST /x HTTP/1.1\r\nHost: j\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
        async with asyncio.timeout(PATIENCE):
            head = await reader.readuntil(b"\r\n\r\n")
            [length] = [
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ]
            body = await reader.readexactly(length)
    assert head.startswith(b"HTTP/1.1 408 "), head
    assert b"\r\nConnection: close\r\n" in head, head
    assert json.loads(body)["error"] == "request_timeout"
    assert live.upstream.for_clients() == []  # nothing forwarded


async def test_an_upload_whose_client_leaves_frees_its_connection(make_live: MakeLive) -> None:
    live = await make_live({**SLOW, "listen": {"body_timeout_seconds": 60, "body_min_rate": 0}})
    async with connection(live, "127.0.0.2") as (_, writer):
        writer.write(
            b"POST /upload HTTP/1.1\r\nHost: j\r\nContent-Length: %d\r\n\r\n" % (4 << 20)
            + b"x" * (300 * 1024)
        )
        await until(lambda: pool(live).in_use == 1, "the upload streaming")
    # The client is gone; its upstream connection must not wait for the read timeout.
    await until(lambda: pool(live).in_use == 0, "the upload's connection freed")


async def test_an_answer_nobody_reads_frees_its_connection(make_live: MakeLive) -> None:
    # A client that asks for a large answer and reads none of it is cut after the
    # send timeout, and the upstream connection it held is freed.
    live = await make_live(SLOW)
    async with connection(live, "127.0.0.2") as (reader, writer):
        writer.write(b"GET /_test/download?size=67108864&length=1 HTTP/1.1\r\nHost: j\r\n\r\n")
        await until(lambda: pool(live).in_use == 1, "the download under way")
        await until(lambda: pool(live).in_use == 0, "the download's connection freed")
        # And the client's connection is cut: what it finally reads ends, incomplete.
        assert await closes_within(reader, PATIENCE)
