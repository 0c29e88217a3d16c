"""Several proxy instances on one PostgreSQL store behave as one; a database outage is survived."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from aiohttp.test_utils import TestClient

from apitokenproxy.app import COMPONENTS, create_app
from apitokenproxy.auth.tokens import format_token
from apitokenproxy.config import config_from_dict

from ..conftest import FakeClock, GatewayTestServer, base_config, deep_merge
from ..fakes import JIRA_USERS, FakeUpstream, basic, bearer
from ..waiting import until

API = "/rest/de.resolution.apitokenauth/latest"
ALICE = basic("alice", "alice-pw")
ISSUE = "/rest/api/2/issue/X-1"

# Several instances, a TCP relay cut mid-run: run with --slow (CI does).
pytestmark = pytest.mark.slow


async def instances(
    aiohttp_server: Any,
    aiohttp_client: Any,
    store_url: str,
    count: int = 2,
    extra: dict[str, Any] | None = None,
) -> tuple[list[TestClient[Any, Any]], FakeClock]:
    upstream = await aiohttp_server(FakeUpstream("jira", JIRA_USERS).app())
    config = config_from_dict(
        deep_merge(base_config(str(upstream.make_url("")).rstrip("/"), store_url), extra or {})
    )
    clock = FakeClock()
    clients = [
        await aiohttp_client(GatewayTestServer(create_app(config, clock=clock)))
        for _ in range(count)
    ]
    return clients, clock


async def make_token(client: TestClient[Any, Any]) -> dict[str, Any]:
    resp = await client.post(f"{API}/user/token", json={"tokenDescription": "t"}, headers=ALICE)
    assert resp.status == 200, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def test_two_instances_share_tokens_and_revocations(
    aiohttp_server: Any, aiohttp_client: Any, postgres_url: str
) -> None:
    (first, second), _ = await instances(aiohttp_server, aiohttp_client, postgres_url)
    made = await make_token(first)
    token = bearer(made["plainTextToken"])
    assert (await second.get(ISSUE, headers=token)).status == 200  # at once, and now cached
    assert (await first.get(ISSUE, headers=token)).status == 200

    resp = await first.delete(f"{API}/user/token/{made['id']}", headers=ALICE)
    assert resp.status == 204

    async def refused() -> bool:
        return (await second.get(ISSUE, headers=token)).status == 401

    await until(refused, "the second instance refuses the revoked token")


async def test_failures_count_across_instances(
    aiohttp_server: Any, aiohttp_client: Any, postgres_url: str
) -> None:
    (first, second), _ = await instances(
        aiohttp_server,
        aiohttp_client,
        postgres_url,
        extra={"auth": {"throttle": {"max_failures": 4}}},
    )
    bad = bearer(format_token(424242, "Q" * 32))
    statuses = []
    for i in range(10):
        client = first if i % 2 == 0 else second
        statuses.append((await client.get(ISSUE, headers=bad)).status)
    # One budget for both: at most one extra attempt per other instance gets through.
    assert statuses.count(401) <= 4 + 1, statuses
    assert statuses[-2:] == [429, 429]


async def test_two_instances_flushing_one_token_keep_the_later_time(
    aiohttp_server: Any, aiohttp_client: Any, postgres_url: str
) -> None:
    (first, second), clock = await instances(aiohttp_server, aiohttp_client, postgres_url)
    made = await make_token(first)
    token = bearer(made["plainTextToken"])
    clock.advance(9_000)
    await first.get(ISSUE, headers=token)  # the later use
    clock.advance(-4_000)
    await second.get(ISSUE, headers=token)  # an earlier use, flushed last
    await first.app[COMPONENTS].last_accessed.flush()
    await second.app[COMPONENTS].last_accessed.flush()
    record = await first.app[COMPONENTS].store.get(made["id"])
    assert record is not None and record.last_accessed == made["created"] + 9_000


class Outage:
    """A TCP relay to PostgreSQL that a test can cut and restore."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()
        self._writers.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.fixture
async def outage(postgres_url: str) -> AsyncIterator[tuple[Outage, str]]:
    parts = urlsplit(postgres_url)
    relay = Outage(parts.hostname or "127.0.0.1", parts.port or 5432)
    await relay.start()
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{relay.port}"
    relayed = urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))
    yield relay, relayed
    with contextlib.suppress(Exception):
        await relay.cut()


async def test_database_outage_is_survived(
    aiohttp_server: Any, aiohttp_client: Any, outage: tuple[Outage, str]
) -> None:
    relay, relayed_url = outage
    (proxy,), clock = await instances(
        aiohttp_server,
        aiohttp_client,
        relayed_url,
        count=1,
        extra={"store": {"busy_timeout_seconds": 1}},
    )
    cached = await make_token(proxy)
    uncached = await make_token(proxy)
    assert (await proxy.get(ISSUE, headers=bearer(cached["plainTextToken"]))).status == 200

    await relay.cut()
    clock.advance(5_000)
    # The cached token keeps working, and its use is remembered.
    assert (await proxy.get(ISSUE, headers=bearer(cached["plainTextToken"]))).status == 200
    # Anything that needs the database gets a clear 503.
    resp = await proxy.get(ISSUE, headers=bearer(uncached["plainTextToken"]))
    assert resp.status == 503
    assert "token database" in (await resp.json())["message"]
    resp = await proxy.post(f"{API}/user/token", json={"tokenDescription": "x"}, headers=ALICE)
    assert resp.status == 503
    await proxy.app[COMPONENTS].last_accessed.flush()  # fails quietly and keeps the times
    assert (await proxy.get("/__apitokenproxy/ready")).status == 503

    await relay.start()  # the database is back, on the same address

    async def ready() -> bool:
        return (await proxy.get("/__apitokenproxy/ready")).status == 200

    await until(ready, "the proxy recovers")
    assert (await proxy.get(ISSUE, headers=bearer(uncached["plainTextToken"]))).status == 200
    await make_token(proxy)
    await proxy.app[COMPONENTS].last_accessed.flush()
    record = await proxy.app[COMPONENTS].store.get(cached["id"])
    assert record is not None and record.last_accessed == cached["created"] + 5_000


async def test_instances_starting_together_migrate_once(postgres_url: str) -> None:
    import asyncpg

    from apitokenproxy.store import open_store
    from apitokenproxy.store.postgres import MIGRATIONS

    stores = await asyncio.gather(*(open_store(postgres_url) for _ in range(4)))
    try:
        conn = await asyncpg.connect(postgres_url)
        try:
            versions = [r[0] for r in await conn.fetch("SELECT version FROM schema_version")]
        finally:
            await conn.close()
        assert sorted(versions) == list(range(1, len(MIGRATIONS) + 1))
    finally:
        for store in stores:
            await store.close()


async def test_listener_reconnects_and_resets_after_a_drop(outage: tuple[Outage, str]) -> None:
    from apitokenproxy.store import open_store

    relay, relayed_url = outage
    store = await open_store(relayed_url)
    resets = asyncio.Event()
    watcher = asyncio.create_task(store.watch(lambda ids: None, resets.set))
    try:
        await until(lambda: bool(store.listener_up()), "the listener is up")
        await relay.cut()
        await until(lambda: not store.listener_up(), "the listener notices the drop")
        assert not resets.is_set()  # nothing to reset against while the database is away
        await relay.start()
        async with asyncio.timeout(10):
            await resets.wait()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await store.close()
