"""The upstream pool, on both lanes: framings, retries, and the one connection limit."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from ..conftest import MakeWorld, World


class QuirkyUpstream:
    """A raw HTTP server that behaves the ways real upstreams sometimes do."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.connections: set[asyncio.StreamWriter] = set()
        self.max_open = 0
        self.accepted = 0

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = 0
        self.accepted += 1
        self.connections.add(writer)
        self.max_open = max(self.max_open, len(self.connections))
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(head)
                path = head.split(b" ")[1]
                if path == b"/one-shot" and served:
                    # Its keep-alive ran out just as the next request came in:
                    # the connection closes without an answer.
                    writer.close()
                    return
                served += 1
                if path == b"/until-close":
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nstreamed to the end"
                    )
                    await writer.drain()
                    writer.close()
                    return
                if path.startswith(b"/control-"):
                    # A header value with a control byte, chosen by the path: 01, 7f, 00, 0a.
                    byte = bytes([int(path.removeprefix(b"/control-"), 16)])
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nX-A: a" + byte + b"X-Injected: 1\r\n"
                        b"Content-Length: 2\r\n\r\nok"
                    )
                elif head.startswith(b"HEAD "):
                    # A declared length and no body: llhttp alone would wait for it.
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
                elif path == b"/no-content":
                    writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                elif path == b"/not-modified":
                    writer.write(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n")
                elif path == b"/early-hints":
                    writer.write(
                        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
                        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"
                    )
                elif path == b"/chunked-trailers":
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: t\r\n\r\n"
                    )
                elif path == b"/bad-chunk":
                    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
                    await writer.drain()
                    writer.close()
                    return
                else:
                    if path.startswith(b"/slow"):
                        await asyncio.sleep(0.05)
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
        finally:
            self.connections.discard(writer)


@pytest.fixture
async def quirky(make_world: MakeWorld) -> tuple[QuirkyUpstream, World]:
    upstream = QuirkyUpstream()
    port = await upstream.start()
    world = await make_world(config={"upstream": {"url": f"http://127.0.0.1:{port}"}})
    yield upstream, world  # type: ignore[misc]
    assert upstream.server is not None
    upstream.server.close()


async def test_an_idle_upstream_connection_that_died_is_retried_for_safe_methods(
    quirky: tuple[QuirkyUpstream, World],
) -> None:
    upstream, world = quirky
    for _ in range(3):
        resp = await world.client.get("/one-shot")
        assert (resp.status, await resp.text()) == (200, "ok")
    # Each GET after the first met a dying pooled connection and was sent again.
    assert len(upstream.requests) == 5
    resp = await world.client.post("/one-shot", data=b"x")
    assert resp.status == 502  # not sent again: the upstream may have acted on it
    assert (await world.client.get("/one-shot")).status == 200


async def test_upstream_framings_pass_through(quirky: tuple[QuirkyUpstream, World]) -> None:
    _, world = quirky
    resp = await world.client.get("/until-close")
    assert await resp.text() == "streamed to the end"
    resp = await world.client.get("/early-hints")
    assert (resp.status, await resp.text()) == (200, "final")
    resp = await world.client.get("/chunked-trailers")
    assert await resp.text() == "Wikipedia"
    resp = await world.client.get("/bad-chunk")
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()
    assert (await world.client.get("/fine")).status == 200


async def test_one_upstream_connection_serves_every_kind_of_answer_in_turn(
    quirky: tuple[QuirkyUpstream, World],
) -> None:
    # The connection's parser carries on from one answer to the next, except
    # after HEAD, whose declared body never comes.
    upstream, world = quirky
    sequence = [
        ("GET", "/a", 200, "ok"),
        ("HEAD", "/h", 200, ""),
        ("GET", "/b", 200, "ok"),
        ("GET", "/chunked-trailers", 200, "Wikipedia"),
        ("HEAD", "/h2", 200, ""),
        ("HEAD", "/h3", 200, ""),
        ("GET", "/no-content", 204, ""),
        ("GET", "/not-modified", 304, ""),
        ("GET", "/early-hints", 200, "final"),
        ("DELETE", "/c", 200, "ok"),
    ]
    for _ in range(2):
        for method, path, status, text in sequence:
            resp = await world.client.request(method, path)
            assert (resp.status, await resp.text()) == (status, text), (method, path)
    assert len(upstream.requests) == 2 * len(sequence)
    assert upstream.accepted == 1  # every answer left the connection reusable


async def test_both_lanes_share_one_pool_of_max_connections(make_world: MakeWorld) -> None:
    upstream = QuirkyUpstream()
    port = await upstream.start()
    world = await make_world(
        config={"upstream": {"url": f"http://127.0.0.1:{port}", "max_connections": 2}}
    )
    # Twenty requests at once, half of them forced through aiohttp (HTTP/1.0
    # is handed off): never more than two upstream connections open.

    async def one(i: int) -> bytes:
        reader, writer = await asyncio.open_connection(world.client.host, world.client.port)
        version = b"1.0" if i % 2 else b"1.1"
        writer.write(b"GET /slow%d HTTP/%b\r\nHost: j\r\nConnection: close\r\n\r\n" % (i, version))
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        return answer.split(b" ", 2)[1]

    statuses = await asyncio.gather(*(one(i) for i in range(20)))
    assert statuses == [b"200"] * 20
    assert upstream.max_open == 2  # each answer takes 50 ms: without the limit, up to 20
    assert upstream.server is not None
    upstream.server.close()


async def test_a_stalled_upload_holds_no_upstream_connection(make_world: MakeWorld) -> None:
    # Red team F2: chunked uploads that never finish used to take every pooled
    # connection before their bodies arrived, and every other client waited.
    world = await make_world(config={"upstream": {"max_connections": 1}})
    stalled = []
    for _ in range(3):
        _, writer = await asyncio.open_connection(world.client.host, world.client.port)
        writer.write(
            b"POST /rest/api/2/attachment HTTP/1.1\r\nHost: j\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n"
        )
        stalled.append(writer)
    try:
        async with asyncio.timeout(5):
            resp = await world.client.get("/rest/api/2/issue/X-1")
        assert resp.status == 200
    finally:
        for writer in stalled:
            writer.close()


async def test_a_pool_that_stays_full_answers_503_not_never(make_world: MakeWorld) -> None:
    world = await make_world(
        config={"upstream": {"max_connections": 1, "connect_timeout_seconds": 0.2}}
    )
    slow = asyncio.create_task(world.client.get("/_test/slow?seconds=0.6"))
    await asyncio.sleep(0.1)
    async with asyncio.timeout(5):
        resp = await world.client.get("/rest/api/2/issue/X-1")
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "1"
    assert (await resp.json())["error"] == "upstream_busy"
    assert (await slow).status == 200
    assert (await world.client.get("/rest/api/2/issue/X-1")).status == 200


@pytest.mark.parametrize("byte", ["01", "7f", "00", "0a", "0d", "1b"])
async def test_a_control_byte_in_an_upstream_header_value_never_reaches_the_client(
    quirky: tuple[QuirkyUpstream, World], byte: str
) -> None:
    # The proxy writes the upstream's header values as llhttp read them, so the
    # guarantee is the parser's: it refuses a control byte in a value (a bare LF
    # or CR could end the line early and make two headers of one).
    _, world = quirky
    resp = await world.client.get(f"/control-{byte}")
    assert resp.status == 502
    assert "X-Injected" not in resp.headers and "X-A" not in resp.headers
    assert (await resp.json())["error"] == "upstream_unavailable"
    assert (await world.client.get("/fine")).status == 200
