"""Issue 19 red team: attacks on the redesign's new seams that the build failed, now fixed.

Each test is one finding (see its docstring); they run on both lanes where
the rule is the lanes'.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from apitokenproxy.app import create_app
from apitokenproxy.config import config_from_dict
from apitokenproxy.server import GatewayRunner, start_site

from ..conftest import LANES, base_config, deep_merge
from ..rawupstream import KnownPasswords, RawUpstream, raw_upstream
from .test_smuggling import Front, _AnswerReader, converse
from .test_smuggling import front as front  # the fixture, shared

READ_WAIT = 3.0


async def read_answers(reader: asyncio.StreamReader, count: int) -> list[tuple[int, bytes]]:
    """Read until ``count`` whole answers are in (or the proxy closes, or READ_WAIT passes)."""
    answers = _AnswerReader()
    with contextlib.suppress(TimeoutError, ConnectionError):
        while len(answers.answers) < count:
            data = await asyncio.wait_for(reader.read(65536), READ_WAIT)
            if not data:
                break
            answers.feed(data)
    return [(a.status, a.body) for a in answers.answers]


# -- 1. SIGTERM drops a fast-lane upload whose body is still arriving ----------------


@contextlib.asynccontextmanager
async def gateway(upstream: RawUpstream, lane: str, store: Path) -> AsyncIterator[GatewayRunner]:
    raw = deep_merge(base_config(upstream.url, f"sqlite:///{store / 'r.db'}"), LANES[lane])
    app = create_app(config_from_dict(raw), identity=KnownPasswords())
    runner = await start_site(app, "127.0.0.1", 0, access_log=False)
    try:
        yield runner
    finally:
        await runner.cleanup()


async def test_a_stop_lets_an_upload_in_flight_finish(lane: str, tmp_path: Path) -> None:
    """SIGTERM while a small upload's body is still coming (head in, half the body
    sent): the request is in flight, so a clean stop must let it finish.

    Found, before the fix (fast lane): ``FastLane.close_idle`` closes every connection whose
    ``busy`` is False, and ``busy`` is set only once the whole body is read
    (``FrontConnection._serve``), so the upload's connection is closed with no
    answer. The aiohttp lane counts it from its head (``request_began``) and
    answers it.
    """
    body = b"x" * 2000
    async with raw_upstream() as upstream, gateway(upstream, lane, tmp_path) as runner:
        port = runner.addresses[0][1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(body)
            + body[:1000]
        )
        await writer.drain()
        await asyncio.sleep(0.1)  # the head and half the body are in
        stopping = asyncio.create_task(runner.cleanup())
        await asyncio.sleep(0.1)  # the stop has begun
        with contextlib.suppress(ConnectionError):
            writer.write(body[1000:])
            await writer.drain()
        answers = await read_answers(reader, 1)
        writer.close()
        await stopping
        received = [r.body for r in upstream.requests()]
    assert [status for status, _ in answers] == [200], answers
    assert received == [body]


# -- 2. A refused Expect: 100-continue is logged without its client ------------------


async def test_a_refused_expect_is_logged_with_its_client(front: Front) -> None:
    """``POST`` with ``Expect: 100-continue`` and a bad token: 401, and its
    access-log line must name the client (127.0.0.1), as every other refusal's does.

    Found, before the fix (both lanes): ``client=unknown``. aiohttp runs the ``expect_handler``
    (``Forwarder.expect``) before any middleware, and ``app.errors_middleware``
    is where ``record.client`` is set; the refusal is returned from the handler,
    so the exchange made by ``exchange_of`` keeps ``Exchange.client``'s default.
    The operator cannot tell who is guessing tokens this way.
    """
    raw = (
        b"POST /x HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer atpx_bad\r\n"
        b"Expect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
    )
    [answer] = await converse(front.port, raw)
    assert answer.status == 401
    [line] = front.access_log.take()
    assert " 127.0.0.1 " in line, line


# -- 3. A refused Expect leaves the connection open with its body unread -------------


async def test_the_request_after_a_refused_expect_is_served(front: Front) -> None:
    """A client sends ``Expect: 100-continue`` with a bad token, gets its 401, does
    not send the body it never got a 100 for (RFC 9110 §10.1.1), and sends its next
    request on the same connection, which the answer did not say was closing.
    Expected: that next request is served (or the 401 says ``Connection: close``).

    Found, before the fix (both lanes): the 401 keeps the connection alive, and aiohttp reads the
    next request's first bytes as the refused request's 5-byte body, so the next
    request is garbled into a 400 (or never answered).
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", front.port)
    try:
        writer.write(
            b"POST /x HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer atpx_bad\r\n"
            b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        )
        first = _AnswerReader()
        data = await asyncio.wait_for(reader.read(65536), READ_WAIT)
        first.feed(data)
        [refused] = first.answers
        assert refused.status == 401
        closing = (b"connection", b"close") in [(k.lower(), v.lower()) for k, v in refused.headers]
        if not closing:
            writer.write(b"GET /next HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            answers = await read_answers(reader, 1)
            assert [status for status, _ in answers] == [200], answers
            assert [r.target for r in front.upstream.requests()] == [b"/next"]
    finally:
        writer.close()


# -- 4. OPTIONS * : the lanes disagree ---------------------------------------------


async def test_both_lanes_answer_options_star_alike(front: Front, lane: str) -> None:
    """``OPTIONS * HTTP/1.1`` (RFC 9112 §3.2.4's asterisk-form).

    Expected: one answer for both lanes (either forwarded as ``OPTIONS *`` or
    refused in JSON), as README's "Two lanes, one behaviour" promises.

    Found, before the fix: the fast lane forwards it to the upstream (``origin_form`` and
    ``heads.path_stays_fast`` let ``*`` through) and answers the upstream's 200;
    the aiohttp lane answers 404 ``not_found`` (its catch-all route
    ``/{tail:.*}`` does not match ``*``). The fast lane's access log also says
    ``"OPTIONS /"`` for what went upstream as ``OPTIONS *``.
    """
    raw = b"OPTIONS * HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    [answer] = await converse(front.port, raw)
    forwarded = [(r.method, r.target) for r in front.upstream.requests()]
    # The aiohttp lane's outcome, which the fast lane must match.
    assert (answer.status, forwarded) == (404, []), (lane, answer.status, forwarded)


# -- 5. HTTP/0.9: the aiohttp lane answers in an HTTP/0.9 status line -----------------


async def test_an_http_0_9_request_is_refused_and_the_connection_closed(front: Front) -> None:
    """``GET /x`` followed by a blank line (llhttp: HTTP/0.9): both lanes refuse it
    400 ``only HTTP/1.0 and HTTP/1.1 are served`` and close, saying so.

    Found: the aiohttp lane (``proxy.fast_path: false``) refused it as an ordinary
    error that neither closed nor said so. (Its status line still says
    ``HTTP/0.9``: aiohttp writes the request's version, and an HTTP/0.9 client reads
    no status line anyway; SECURITY.md's Known limits.)
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", front.port)
    writer.write(b"GET /x\r\n\r\n")
    data = await asyncio.wait_for(reader.read(65536), READ_WAIT)
    closed = await asyncio.wait_for(reader.read(), READ_WAIT) == b""
    writer.close()
    status_line, _, rest = data.partition(b"\r\n")
    assert status_line.endswith(b" 400 Bad Request"), data
    assert b"\r\nConnection: close\r\n" in b"\r\n" + rest, data
    assert b'"message": "only HTTP/1.0 and HTTP/1.1 are served"' in rest, data
    assert closed
