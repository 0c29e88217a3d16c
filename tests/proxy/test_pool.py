"""The upstream pool against a real socket, driven by sinks that behave as lanes do."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from apitokenproxy.errors import ProxyError, TooManyInFlight, UpstreamBusy
from apitokenproxy.live import Live, Settings, UpstreamLimits
from apitokenproxy.proxy.framing import Body, Headers, request_head
from apitokenproxy.proxy.pool import UpstreamPool, reserved_for_the_proxy
from apitokenproxy.proxy.upstream import UpstreamConnection

BODY = b"x" * 100_000


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Every request gets BODY with its length, on a keep-alive connection."""
    try:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        writer.close()  # the client left, or the test's server is closing


def _limits(*, connect_timeout: float, per_client: int = 0) -> Live:
    limits = UpstreamLimits(connect_timeout=connect_timeout, per_client=per_client)
    return Live(Settings(upstream=limits))


@pytest.fixture
async def pool() -> AsyncIterator[UpstreamPool]:
    server = await asyncio.start_server(_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = UpstreamPool("127.0.0.1", port, limit=1, live=_limits(connect_timeout=5))
    yield pool
    pool.close()
    server.close()
    await server.wait_closed()


class SlowClient:
    """A lane whose client stops reading as the answer ends: it pauses the upstream
    from inside the last body callback (the aiohttp lane's high-water mark) or from
    inside ``response_end`` (the fast lane's final write filling the client's buffer)."""

    def __init__(self, pause_in: str) -> None:
        self.pause_in = pause_in
        self.upstream: UpstreamConnection | None = None
        self.received = 0
        self.done = asyncio.get_running_loop().create_future()

    def attached(self, upstream: UpstreamConnection) -> None:
        self.upstream = upstream

    def response_head(self, status: int, headers: Headers, body: Body, length: int | None) -> None:
        pass

    def response_body(self, data: bytes) -> None:
        self.received += len(data)
        if self.pause_in == "body" and self.received == len(BODY) and self.upstream is not None:
            self.upstream.pause_reading()

    def response_flush(self) -> None:
        pass

    def response_end(self) -> None:
        if self.pause_in == "end" and self.upstream is not None:
            self.upstream.pause_reading()
        self.done.set_result(self.received)

    def response_failed(self, error: ProxyError, *, started: bool) -> None:
        self.done.set_exception(error)


@pytest.mark.parametrize("pause_in", ["body", "end"])
async def test_a_connection_paused_as_its_answer_ended_serves_the_next_request(
    pool: UpstreamPool, pause_in: str
) -> None:
    # Issue 18, item 1: the connection went back to the pool still paused for
    # reading, and the next request on it waited for the read timeout (300 s).
    request = request_head("GET", "/big", [("Host", "x")], 0)
    for _ in range(3):
        first = SlowClient(pause_in)
        pool.send(first, "GET", request)
        assert await asyncio.wait_for(first.done, 10) == len(BODY)
        # The client catches up only after its exchange is over, too late to resume anything.
        second = SlowClient("never")
        pool.send(second, "GET", request)
        assert await asyncio.wait_for(second.done, 10) == len(BODY)
    assert pool.in_use == 0


@pytest.fixture
async def shared_pool() -> AsyncIterator[UpstreamPool]:
    server = await asyncio.start_server(_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = UpstreamPool("127.0.0.1", port, limit=8, live=_limits(connect_timeout=0.2, per_client=2))
    yield pool
    pool.close()
    server.close()
    await server.wait_closed()


async def test_one_address_holds_at_most_its_share(shared_pool: UpstreamPool) -> None:
    # Issue 18, item 12: slow clients at one address could hold every connection.
    pool = shared_pool
    first, second = await pool.acquire("10.0.0.1"), await pool.acquire("10.0.0.1")
    with pytest.raises(TooManyInFlight) as refused:
        await pool.acquire("10.0.0.1")
    assert refused.value.status == 429 and "max_connections_per_client" in refused.value.message
    other = await pool.acquire("10.0.0.2")  # another address is not held back
    assert pool.held_by("10.0.0.1") == 2 and pool.held_by("10.0.0.2") == 1
    # A waiter gets the connection its address gives back.
    waiting = asyncio.ensure_future(pool.acquire("10.0.0.1"))
    await asyncio.sleep(0)
    pool.release(first, True)
    assert await waiting is first
    for conn in (second, other, first):
        pool.discard(conn)
    assert pool.in_use == 0 and pool.held_by("10.0.0.1") == 0


async def test_the_proxys_own_calls_keep_a_slice_no_client_can_take(
    shared_pool: UpstreamPool,
) -> None:
    pool = shared_pool
    assert reserved_for_the_proxy(8) == 1
    held = [await pool.acquire(f"10.0.0.{n}") for n in range(7)]
    with pytest.raises(UpstreamBusy):
        await pool.acquire("10.0.0.99")
    own = await pool.acquire(None)  # the proxy's own REST call
    assert pool.in_use == 8
    for conn in (*held, own):
        pool.discard(conn)


@pytest.mark.parametrize(
    "limit, kept", [(1, 0), (3, 0), (4, 1), (16, 1), (32, 2), (256, 16), (1000, 62)]
)
def test_what_is_kept_for_the_proxy(limit: int, kept: int) -> None:
    assert reserved_for_the_proxy(limit) == kept
