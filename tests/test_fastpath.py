"""The fast lane: which requests it takes, how it frames answers, and how it fails."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from apitokenproxy.errors import UpstreamUnavailable
from apitokenproxy.fastpath import FAST_BODY_MAX, RequestHead, _response, parse_request_head

from .conftest import MakeWorld, World
from .fakes import bearer

API = "/rest/de.resolution.apitokenauth/latest"


def head(*lines: str) -> bytes:
    return "\r\n".join(lines).encode("latin-1")


PLAIN = ("GET /rest/api/2/issue/X-1?expand=names HTTP/1.1", "Host: jira", "Accept: */*")


def test_a_plain_request_is_taken() -> None:
    parsed = parse_request_head(head(*PLAIN))
    assert parsed == RequestHead(
        "GET",
        "/rest/api/2/issue/X-1?expand=names",
        [("Host", "jira"), ("Accept", "*/*")],
        0,
        False,
        "jira",
    )


@pytest.mark.parametrize(
    ("lines", "why"),
    [
        (("GET /x HTTP/1.0", "Host: j"), "HTTP/1.0"),
        (("BREW /x HTTP/1.1", "Host: j"), "unknown method"),
        (("GET http://j/x HTTP/1.1", "Host: j"), "absolute form"),
        (("GET /x HTTP/1.1",), "no Host"),
        (("GET /x HTTP/1.1", "Host: j", "Host: k"), "two Hosts"),
        (("GET /x HTTP/1.1", "Host: j", "Transfer-Encoding: chunked"), "chunked body"),
        (("GET /x HTTP/1.1", "Host: j", "Upgrade: websocket"), "upgrade"),
        (("POST /x HTTP/1.1", "Host: j", "Expect: 100-continue"), "expect"),
        (("POST /x HTTP/1.1", "Host: j", "Content-Length: 1", "Content-Length: 1"), "two lengths"),
        (("POST /x HTTP/1.1", "Host: j", "Content-Length: +1"), "signed length"),
        (("POST /x HTTP/1.1", "Host: j", f"Content-Length: {FAST_BODY_MAX + 1}"), "large body"),
        (
            ("GET /rest/de.resolution.apitokenauth/latest/user/token HTTP/1.1", "Host: j"),
            "token API",
        ),
        (("GET /REST/DE.RESOLUTION.APITOKENAUTH/x HTTP/1.1", "Host: j"), "token API, any case"),
        (("GET /__apitokenproxy/health HTTP/1.1", "Host: j"), "health"),
        (("GET /a%2Fb HTTP/1.1", "Host: j"), "percent in the path"),
        (("GET /a/../b HTTP/1.1", "Host: j"), "dot segment"),
        (("GET //a HTTP/1.1", "Host: j"), "empty segment"),
        (("GET /x HTTP/1.1", "Host: j", "X-A : b"), "space before colon"),
        (("GET /x HTTP/1.1", "Host: j", "X-A: b", " folded"), "obs-fold"),
        (("GET /x HTTP/1.1", "Host: j", "X-A: b\x00"), "NUL"),
        (("GET /x HTTP/1.1", "Host: j", "X-A: " + "a" * 9000), "long line"),
        (("GET /x HTTP/1.1", "Host: j", *(f"X-{i}: v" for i in range(120))), "many headers"),
    ],
)
def test_anything_else_goes_to_aiohttp(lines: tuple[str, ...], why: str) -> None:
    assert parse_request_head(head(*lines)) is None, why


def test_query_strings_may_hold_anything() -> None:
    parsed = parse_request_head(head("GET /x?a=%2F..//apitokenauth HTTP/1.1", "Host: j"))
    assert parsed is not None


REQ = RequestHead("GET", "/x", [], 0, False, "j")


@pytest.mark.parametrize(
    ("request_head", "status", "headers", "framing", "reusable"),
    [
        (REQ, 200, [("Content-Length", "5")], "length", True),
        (REQ, 200, [("Transfer-Encoding", "chunked"), ("Content-Length", "5")], "chunked", True),
        (REQ, 200, [("Transfer-Encoding", "gzip")], "close", False),
        (REQ, 200, [], "close", False),
        (REQ, 200, [("Content-Length", "5"), ("Connection", "close")], "length", False),
        (REQ, 204, [], "none", True),
        (REQ, 304, [("Content-Length", "10")], "none", True),
        (
            RequestHead("HEAD", "/x", [], 0, False, "j"),
            200,
            [("Content-Length", "10")],
            "none",
            True,
        ),
    ],
)
def test_response_framing(
    request_head: RequestHead,
    status: int,
    headers: list[tuple[str, str]],
    framing: str,
    reusable: bool,
) -> None:
    response = _response(request_head, status, "OK", "HTTP/1.1", headers)
    assert (response.framing, response.reusable) == (framing, reusable)
    sent = response.head.decode()
    assert sent.startswith(f"HTTP/1.1 {status} OK\r\n") and sent.endswith("\r\n\r\n")
    if framing == "chunked":
        assert "Transfer-Encoding: chunked" in sent and "Content-Length" not in sent
    if framing == "close":
        assert "Connection: close" in sent


def test_conflicting_lengths_from_the_upstream_are_refused() -> None:
    with pytest.raises(UpstreamUnavailable):
        _response(REQ, 200, "OK", "HTTP/1.1", [("Content-Length", "5"), ("Content-Length", "6")])


@pytest.fixture
async def jira(make_world: MakeWorld) -> World:
    return await make_world(config={"proxy": {"fast_path": True}})


async def test_plain_requests_take_the_fast_lane_and_the_rest_is_handed_off(jira: World) -> None:
    fast = jira.client.server.runner.fast  # type: ignore[union-attr]
    assert fast is not None
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


class QuirkyUpstream:
    """A raw HTTP server that behaves the ways real upstreams sometimes do."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = 0
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
                if path == b"/early-hints":
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
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


@pytest.fixture
async def quirky(make_world: MakeWorld) -> tuple[QuirkyUpstream, World]:
    upstream = QuirkyUpstream()
    port = await upstream.start()
    world = await make_world(
        config={"upstream": {"url": f"http://127.0.0.1:{port}"}, "proxy": {"fast_path": True}}
    )
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


async def test_the_fast_lane_can_be_switched_off(make_world: MakeWorld) -> None:
    world = await make_world(config={"proxy": {"fast_path": False}})
    assert world.client.server.runner.fast is None  # type: ignore[union-attr]
    assert (await world.client.get("/rest/api/2/issue/X-1", headers=bearer("x"))).status == 200
