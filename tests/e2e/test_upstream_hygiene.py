"""What the upstream sends is read strictly, and never leaks into another answer.

A pooled upstream connection is shared by every user of the proxy, so bytes
that no request asked for (after a complete response, past the declared
length, a body to HEAD, 204 or 304) would be read as the *next* user's
answer. Each row runs on both lanes against the raw upstream with one pooled
connection, so a poisoned or leaked connection is certain to be reused.

The client side speaks through h11, which knows that HEAD, 204 and 304
answers have no body: bytes the proxy sends where none may be show up as
trailing data or as a broken next answer on the same connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h11
import pytest

from ..connections import closes_within
from ..rawupstream import (
    LATE_DELAY,
    RawUpstream,
    close_delimited_body,
    normal_body,
    proxy_in_front,
    raw_upstream,
)
from ..waiting import until

WAIT = 5.0  # per answer: a hang fails fast instead of stalling the suite


@dataclass(frozen=True)
class Reply:
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]  # names lower case, as h11 gives them
    body: bytes

    def header(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.headers if k == name]

    @property
    def framing(self) -> str:
        if b"chunked" in self.header(b"transfer-encoding"):
            return "chunked"
        return "length" if self.header(b"content-length") else "close"


class Client:
    """One keep-alive client connection, read through h11."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._h11 = h11.Connection(h11.CLIENT)
        self.received = bytearray()

    @classmethod
    async def open(cls, port: int) -> Client:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def request(self, method: str, target: str, *headers: tuple[str, str]) -> Reply:
        if self._h11.states == {h11.CLIENT: h11.DONE, h11.SERVER: h11.DONE}:
            self._h11.start_next_cycle()
        self._writer.write(
            self._h11.send(
                h11.Request(method=method, target=target, headers=[("Host", "h"), *headers])
            )
            + self._h11.send(h11.EndOfMessage())
        )
        async with asyncio.timeout(WAIT):
            return await self._reply()

    async def _reply(self) -> Reply:
        response: h11.Response | None = None
        body = bytearray()
        while True:
            event = self._h11.next_event()
            if event is h11.NEED_DATA:
                data = await self._reader.read(65536)
                if not data and response is None:
                    raise ConnectionError("the proxy closed the connection without an answer")
                self.received += data
                self._h11.receive_data(data)
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert response is not None
                return Reply(
                    response.status_code, response.reason, list(response.headers), bytes(body)
                )

    async def trailing(self, seconds: float) -> bytes:
        """Bytes that arrive after the last answer, within ``seconds`` (b"" if none or closed)."""
        trailing = bytearray(self._h11.trailing_data[0])
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(seconds):
                while data := await self._reader.read(65536):
                    trailing += data
        return bytes(trailing)

    async def closed(self, seconds: float = WAIT) -> bool:
        """Whether the proxy closes this connection within ``seconds`` (whatever else arrives)."""
        return await closes_within(self._reader, seconds)

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()


@pytest.fixture
async def upstream() -> AsyncIterator[RawUpstream]:
    async with raw_upstream() as raw:
        yield raw


@pytest.fixture
async def proxy(upstream: RawUpstream, lane: str, tmp_path: Path) -> AsyncIterator[int]:
    async with proxy_in_front(upstream, lane, tmp_path) as port:
        yield port


async def one_request(port: int, method: str, target: str, *headers: tuple[str, str]) -> Reply:
    client = await Client.open(port)
    try:
        return await client.request(method, target, *headers)
    finally:
        await client.close()


async def assert_served_in_turn(port: int, upstream: RawUpstream, *probes: str) -> None:
    """Each probe, from a new client connection, gets its own answer: the pooled
    connection was neither poisoned nor leaked."""
    for probe in probes:
        target = f"/normal?probe={probe}"
        reply = await one_request(port, "GET", target)
        assert reply.status == 200, (probe, reply)
        assert reply.body == normal_body(upstream.serving(target).serial), probe


def assert_json_error(reply: Reply, status: int) -> None:
    assert reply.status == status, reply
    data = json.loads(reply.body)
    assert data["status"] == status
    assert data["error"] and data["message"]
    assert data["errorMessages"] == [data["message"]]


# Unasked bytes ------------------------------------------------------------------------------

UNASKED = {
    "a second response after a complete one": ("GET", "/late-extra", 200, True),
    "a body longer than its Content-Length": ("GET", "/overlong", 200, True),
    "a body to HEAD": ("HEAD", "/head-body", 200, False),
    "a body to 204": ("GET", "/no-content-body/204", 204, False),
    "a body to 304": ("GET", "/no-content-body/304", 304, False),
}


@pytest.mark.parametrize(
    ("method", "path", "status", "has_body"), UNASKED.values(), ids=UNASKED.keys()
)
async def test_unasked_upstream_bytes_never_reach_anyone(
    proxy: int, upstream: RawUpstream, method: str, path: str, status: int, has_body: bool
) -> None:
    first = await Client.open(proxy)
    reply = await first.request(method, path)
    served = upstream.serving(path)
    assert reply.status == status
    assert reply.body == (normal_body(served.serial) if has_body else b"")
    # The unasked bytes come LATE_DELAY after the answer: none of them follows it.
    assert await first.trailing(3 * LATE_DELAY) == b""
    await first.close()
    await assert_served_in_turn(proxy, upstream, "1", "2")
    assert upstream.carried(served.connection) == [served], "a poisoned connection was reused"
    await until(lambda: served.connection in upstream.closed, "the poisoned connection closes")
    assert upstream.errors == []


# Answers that are not HTTP --------------------------------------------------------------------

BROKEN = {
    "superscript digit in the status code": "/bad-status",
    "superscript digit as Content-Length": "/bad-length",
}


@pytest.mark.parametrize("path", BROKEN.values(), ids=BROKEN.keys())
async def test_a_broken_answer_is_a_502_and_frees_its_connection(
    proxy: int, upstream: RawUpstream, path: str
) -> None:
    assert_json_error(await one_request(proxy, "GET", path), 502)
    # With one upstream connection allowed, a leaked slot would hang these.
    await assert_served_in_turn(proxy, upstream, "1", "2")


CHUNK_SIZES = ["0x5", "+5", "-5", "5_0"]


@pytest.mark.parametrize("size", CHUNK_SIZES)
async def test_a_bad_chunk_size_never_reaches_the_client_as_data(
    proxy: int, upstream: RawUpstream, size: str
) -> None:
    client = await Client.open(proxy)
    try:
        reply = await client.request("GET", f"/chunk/{size}")
    except (h11.RemoteProtocolError, ConnectionError):
        # Cut: acceptable only if nothing of the bogus chunk was relayed and the
        # proxy hangs up, so no client can read it, leniently or otherwise.
        assert b"BOGUS" not in client.received
        assert size.encode() + b"\r\n" not in client.received
        assert await client.closed(), "the proxy kept a connection it could not finish"
    else:
        assert_json_error(reply, 502)
    await client.close()
    await assert_served_in_turn(proxy, upstream, "1", "2")


async def test_a_bare_lf_in_an_upstream_header_never_reaches_the_client(
    proxy: int, upstream: RawUpstream
) -> None:
    client = await Client.open(proxy)
    try:
        reply = await client.request("GET", "/lf-header")
    finally:
        await client.close()
    assert b"X-Injected" not in client.received
    head = bytes(client.received).partition(b"\r\n\r\n")[0]
    assert b"\n" not in head.replace(b"\r\n", b""), head
    if reply.status == 200:
        assert reply.header(b"x-injected") == []
        assert reply.header(b"x-a") == []  # a value with a line break in it is not passed on
    else:
        assert_json_error(reply, 502)
    await assert_served_in_turn(proxy, upstream, "1")


# Framing the proxy writes ----------------------------------------------------------------------

REFRAMED = {
    "chunked with a trailer": ("/chunked", normal_body),
    "delimited by the upstream closing": ("/close-delimited", close_delimited_body),
}


@pytest.mark.parametrize(("path", "expected"), REFRAMED.values(), ids=REFRAMED.keys())
async def test_bodies_arrive_whole_with_framing_the_proxy_wrote(
    proxy: int, upstream: RawUpstream, path: str, expected: Any
) -> None:
    reply = await one_request(proxy, "GET", path)
    assert reply.status == 200
    assert reply.body == expected(upstream.serving(path).serial)
    # A client must not have to guess where the body ends from a closing connection.
    assert reply.framing in ("length", "chunked"), reply.headers
    assert len(reply.header(b"content-length")) + len(reply.header(b"transfer-encoding")) == 1
    await assert_served_in_turn(proxy, upstream, "1")


# Answers to HEAD ---------------------------------------------------------------------------------

HEAD_ERRORS = {
    "401 from the proxy": ("/x", [("Authorization", "Basic !!!")], 401),
    "502 from the proxy": ("/bad-status", [], 502),
}


@pytest.mark.parametrize(
    ("path", "headers", "status"), HEAD_ERRORS.values(), ids=HEAD_ERRORS.keys()
)
async def test_head_error_answers_carry_no_body(
    proxy: int, upstream: RawUpstream, path: str, headers: list[tuple[str, str]], status: int
) -> None:
    client = await Client.open(proxy)
    reply = await client.request("HEAD", path, *headers)
    assert (reply.status, reply.body) == (status, b"")
    if status == 401:
        assert reply.header(b"www-authenticate"), "HEAD gets the head a GET would, headers and all"
    assert await client.trailing(0.2) == b"", "the proxy sent a body to HEAD"
    if b"close" in b",".join(reply.header(b"connection")).lower():
        await client.close()
        client = await Client.open(proxy)
    # The same connection carries on: a body sent to HEAD would be read as this answer.
    after = await client.request("GET", "/normal?after=head")
    await client.close()
    assert after.status == 200
    assert after.body == normal_body(upstream.serving("/normal?after=head").serial)


# Status lines ------------------------------------------------------------------------------------

REASONS = {
    "proxied 200": ("GET", "/normal", [], 200),
    "proxied 404 with its own phrase": ("GET", "/odd-reason", [], 404),
    "401 from the proxy": ("GET", "/x", [("Authorization", "Basic !!!")], 401),
    "401 from the proxy to HEAD": ("HEAD", "/x", [("Authorization", "Basic !!!")], 401),
    "502 from the proxy": ("GET", "/bad-status", [], 502),
}


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"), REASONS.values(), ids=REASONS.keys()
)
async def test_status_lines_carry_the_standard_reason_phrase(
    proxy: int, method: str, path: str, headers: list[tuple[str, str]], status: int
) -> None:
    reply = await one_request(proxy, method, path, *headers)
    assert reply.status == status
    assert reply.reason.decode() == http.HTTPStatus(status).phrase
