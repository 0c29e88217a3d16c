"""Request smuggling, judged differentially: what the upstream reads must be what the proxy read.

For every request head here, on both lanes, the proxy either refuses it (a
4xx JSON answer, nothing forwarded) or forwards bytes that llhttp (httptools,
what the proxy parses with) and h11 (a second, independent reading) turn into
exactly the same requests, each answered once and in order, each carrying at
most one user header, and that only with the authenticated token owner's
name. A request the two parsers read differently is the start of a
smuggling attack, even when the proxy's own reading was harmless.

The table rows are attacks that once worked somewhere; the hypothesis test
composes request heads from the same risky pieces.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import h11
import httptools
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from apitokenproxy.proxy.framing import MALFORMED
from apitokenproxy.proxy.heads import CHUNKED_ONLY, ONE_HOST

from ..fakes import USER_HEADER
from ..rawupstream import (
    AccessLines,
    ParsedRequest,
    RawUpstream,
    parse_requests,
    proxy_in_front,
    raw_upstream,
)
from .test_attacks import API, b64

USER = USER_HEADER.lower()
TOTAL_WAIT = 5.0  # for the first answer: a hang fails fast
# After the answers expected, for any that should not come: on loopback an
# answer the proxy meant to send is written within microseconds.
IDLE_WAIT = 0.1
_SERIAL = re.compile(rb"resp-(\d+)")


@dataclass(frozen=True)
class Sent:
    """One request as the upstream should receive it."""

    method: str
    target: str
    body: bytes = b""
    user: str | None = None  # the X-Forwarded-User value, None: no such header


Refused = Literal["refused"]
REFUSED: Refused = "refused"
Outcome = Refused | tuple[Sent, ...]


@dataclass(frozen=True)
class Answer:
    """One answer the client read, parsed by llhttp."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    @property
    def serial(self) -> int | None:
        """The upstream's serial if this answer came from the upstream, else None."""
        found = _SERIAL.fullmatch(self.body)
        return int(found.group(1)) if found else None


class _AnswerReader:
    """httptools callbacks collecting whole responses."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.in_message = False
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._body = bytearray()

    def feed(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.in_message = True
        self._headers, self._body = [], bytearray()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self.in_message = False
        status = self._parser.get_status_code()
        self.answers.append(Answer(status, self._headers, bytes(self._body)))


async def converse(port: int, raw: bytes, expected: int | None = None) -> list[Answer]:
    """Send ``raw`` in one write; read answers until the proxy closes, or until it
    has been quiet for IDLE_WAIT once ``expected`` answers (one, if None) are in."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = _AnswerReader()
    try:
        writer.write(raw)
        while True:
            enough = len(answers.answers) >= (expected or 1) and not answers.in_message
            try:
                data = await asyncio.wait_for(
                    reader.read(65536), IDLE_WAIT if enough else TOTAL_WAIT
                )
            except TimeoutError:
                assert enough, f"no complete answer in {TOTAL_WAIT} s: {answers.answers}"
                break
            except ConnectionError:
                data = b""
            if not data:
                assert not answers.in_message, "the proxy closed in the middle of an answer"
                break
            try:
                answers.feed(data)
            except httptools.HttpParserError as exc:
                pytest.fail(f"the proxy answered with invalid HTTP: {exc}: {data[:200]!r}")
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return answers.answers


# Reading what reached the upstream, twice ---------------------------------------------------


def h11_requests(data: bytes) -> list[ParsedRequest]:
    """Every complete request in ``data`` as h11 reads it (an unfinished one at the end is left out)."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    out: list[ParsedRequest] = []
    request: h11.Request | None = None
    body = bytearray()
    while True:
        step = conn.next_event()
        if step is h11.NEED_DATA or isinstance(step, h11.ConnectionClosed):
            return out
        if isinstance(step, h11.Request):
            request, body = step, bytearray()
        elif isinstance(step, h11.Data):
            body += step.data
        elif isinstance(step, h11.EndOfMessage):
            assert request is not None
            headers = list(request.headers.raw_items())
            out.append(ParsedRequest(request.method, request.target, headers, bytes(body)))
            # h11 reads the next request only once this one is answered.
            conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
            conn.send(h11.EndOfMessage())
            if conn.our_state is h11.MUST_CLOSE:
                assert not conn.trailing_data[0], "requests after one that closes the connection"
                return out
            conn.start_next_cycle()


def _comparable(request: ParsedRequest) -> tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes]:
    # h11 strips the whitespace around a value, llhttp only what precedes it.
    headers = [(name.lower(), value.strip(b" \t")) for name, value in request.headers]
    return request.method, request.target, headers, request.body


def forwarded(upstream: RawUpstream) -> list[ParsedRequest]:
    """What reached the upstream, once both parsers agree on every connection."""
    assert upstream.errors == [], upstream.errors
    agreed: list[ParsedRequest] = []
    for index, data in enumerate(upstream.connections):
        by_llhttp = parse_requests(bytes(data))
        try:
            by_h11 = h11_requests(bytes(data))
        except h11.RemoteProtocolError as exc:
            pytest.fail(f"h11 refuses what llhttp read on connection {index}: {exc}: {data!r}")
        assert [_comparable(r) for r in by_h11] == [_comparable(r) for r in by_llhttp], bytes(data)
        agreed.extend(by_llhttp)
    return agreed


def _normalised(name: bytes) -> str:
    return name.decode("latin-1").strip().lower().replace("_", "-")


def user_of(request: ParsedRequest) -> str | None:
    values = [v for k, v in request.headers if _normalised(k) == USER]
    assert len(values) <= 1, f"several user headers: {request.headers}"
    return values[0].decode("latin-1") if values else None


def check(upstream: RawUpstream, answers: Sequence[Answer], users: Sequence[str | None]) -> Outcome:
    """Assert the invariant; return what happened, for the row to judge.

    ``users``: the user each request the client sent may carry, in order
    ("alice" for one with her token, None for the rest).
    """
    requests = forwarded(upstream)
    for request in requests:
        framing = [_normalised(k) for k, _ in request.headers]
        assert framing.count("content-length") <= 1, request.headers
        assert not {"content-length", "transfer-encoding"} <= set(framing), request.headers
    for answer in answers:
        if answer.serial is None:
            assert 400 <= answer.status < 500, answer
            error = json.loads(answer.body)
            assert error["status"] == answer.status and error["message"], answer
    # Each forwarded request answered once, in order, and no answer invented.
    serials = [a.serial for a in answers if a.serial is not None]
    assert serials == [s.serial for s in upstream.served], (serials, upstream.served)
    assert len(requests) == len(upstream.served)
    for index, request in enumerate(requests):
        allowed = users[index] if index < len(users) else None
        assert user_of(request) in {None, allowed}, (index, request.headers)
    if not requests:
        assert answers, "refused without an answer"
        return REFUSED
    return tuple(
        Sent(
            r.method.decode("latin-1"),
            r.target.decode("latin-1"),
            r.body,
            user_of(r),
        )
        for r in requests
    )


# The proxy, its upstream and a token ---------------------------------------------------------


@dataclass
class Front:
    port: int
    upstream: RawUpstream
    token: bytes
    access_log: AccessLines


async def token_for(port: int, user: str = "alice") -> bytes:
    body = b'{"tokenDescription": "smuggling"}'
    request = (
        f"POST {API}/user/token HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
        f"Authorization: Basic {b64(f'{user}:{user}-pw'.encode())}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    [answer] = await converse(port, request)
    assert answer.status == 200, answer
    return str(json.loads(answer.body)["plainTextToken"]).encode()


@pytest.fixture
async def front(
    lane: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[Front]:
    log = AccessLines()
    async with (
        raw_upstream() as upstream,
        proxy_in_front(upstream, lane, tmp_path, access_log=log) as port,
    ):
        token = await token_for(port)
        upstream.drop_connections()  # the token API asked nothing of it, but start clean
        log.take()
        yield Front(port, upstream, token, log)
    # Issue 18, item 5: a malformed request must never cost a traceback (the
    # aiohttp lane's access-log hook crashed on aiohttp's error requests).
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


# The corpus ------------------------------------------------------------------------------------

# A request in the body of another: harmless as data, an attack if read as a request.
SMUGGLED = b"GET /admin HTTP/1.1\r\nHost: h\r\nX-Forwarded-User: admin\r\n\r\n"
AUTH = b"Authorization: Bearer TOKEN\r\n"  # TOKEN is replaced by alice's token


def post(*lines: bytes, body: bytes = SMUGGLED) -> bytes:
    return (
        b"POST /x HTTP/1.1\r\nHost: h\r\n"
        + b"".join(line + b"\r\n" for line in lines)
        + b"\r\n"
        + body
    )


def chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)


def length(body: bytes = SMUGGLED) -> bytes:
    return b"Content-Length: %d" % len(body)


def forwards(*sent: Sent) -> tuple[Sent, ...]:
    return sent


AS_DATA = forwards(Sent("POST", "/x", SMUGGLED, "alice"))


@dataclass(frozen=True)
class Case:
    raw: bytes
    allowed: tuple[Outcome, ...]
    answers: int = 1  # how many the client should get
    # Per request sent, who it may claim to be; default: alice if the case has her token.
    users: tuple[str | None, ...] | None = None

    def claims(self) -> tuple[str | None, ...]:
        if self.users is not None:
            return self.users
        return ("alice",) if AUTH in self.raw else (None,)


CASES: dict[str, Case] = {
    # Connection may name framing and identity headers; the proxy's own must survive it.
    "Connection names Content-Length": Case(post(AUTH.strip(), b"Connection: Content-Length", length()), (AS_DATA,)),
    "Connection names Transfer-Encoding": Case(post(AUTH.strip(), b"Connection: Transfer-Encoding", length()), (AS_DATA,)),
    "Connection names Host": Case(post(AUTH.strip(), b"Connection: Host", length()), (AS_DATA,)),
    "Connection names the user header": Case(post(AUTH.strip(), b"Connection: X-Forwarded-User", length()), (AS_DATA,)),
    # Request lines that Tomcat and llhttp split differently.
    "tab and bare LF in the request line": Case(b"GET /x\tHTTP/1.1\nX-Forwarded-User:admin\nX-Pad: HTTP/1.1\r\nHost: h\r\n\r\n", (REFUSED,)),
    "bare LF in the target": Case(b"GET /x\nX-Forwarded-User: admin HTTP/1.1\r\nHost: h\r\n\r\n", (REFUSED,)),
    "tab in the target": Case(b"GET /x\ty HTTP/1.1\r\nHost: h\r\n\r\n", (REFUSED,)),
    "control byte in the target": Case(b"GET /x\x01y HTTP/1.1\r\nHost: h\r\n\r\n", (REFUSED,)),
    "DEL in the target": Case(b"GET /x\x7fy HTTP/1.1\r\nHost: h\r\n\r\n", (REFUSED,)),
    "raw latin-1 byte in the target": Case(b"GET /caf\xe9 HTTP/1.1\r\nHost: h\r\n\r\n", (REFUSED,)),
    "raw UTF-8 in the target": Case(b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", (REFUSED,)),
    # Framing disagreements.
    "CL.TE": Case(post(b"Content-Length: 6", b"Transfer-Encoding: chunked", body=b"0\r\n\r\n" + SMUGGLED), (REFUSED,)),
    "TE.CL": Case(post(b"Transfer-Encoding: chunked", b"Content-Length: 3", body=chunked(SMUGGLED)), (REFUSED,)),
    "TE.TE chunked then x": Case(post(b"Transfer-Encoding: chunked", b"Transfer-Encoding: x", body=chunked(b"abc") + SMUGGLED), (REFUSED,)),
    "TE.TE space before colon": Case(post(b"Transfer-Encoding : chunked", body=chunked(b"abc") + SMUGGLED), (REFUSED,)),
    "TE.TE xchunked": Case(post(b"Transfer-Encoding: xchunked", body=chunked(b"abc") + SMUGGLED), (REFUSED,)),
    "TE.TE tab after colon": Case(post(AUTH.strip(), b"Transfer-Encoding:\tchunked", body=chunked(SMUGGLED)), (REFUSED, AS_DATA)),
    "TE.TE chunked, identity": Case(post(b"Transfer-Encoding: chunked, identity", body=chunked(b"abc") + SMUGGLED), (REFUSED,)),
    "TE gzip, chunked": Case(post(AUTH.strip(), b"Transfer-Encoding: gzip, chunked", body=chunked(SMUGGLED)), (REFUSED,)),
    "TE header, not Transfer-Encoding": Case(post(AUTH.strip(), b"TE: gzip, chunked", length()), (AS_DATA,)),
    "two different Content-Lengths": Case(post(b"Content-Length: 0", length()), (REFUSED,)),
    "Content-Length: +N": Case(post(b"Content-Length: +%d" % len(SMUGGLED)), (REFUSED,)),
    "Content-Length: N, N": Case(post(b"Content-Length: %d, %d" % (len(SMUGGLED), len(SMUGGLED))), (REFUSED, forwards(Sent("POST", "/x", SMUGGLED)))),
    "obs-fold of a header": Case(b"GET /x HTTP/1.1\r\nHost: h\r\nX-A: a\r\n X-Forwarded-User: admin\r\n\r\n", (REFUSED,)),
    "obs-fold of Transfer-Encoding": Case(post(b"Transfer-Encoding:", b" chunked", body=chunked(b"abc") + SMUGGLED), (REFUSED,)),
    # The user header in other spellings.
    "user header with underscores": Case(b"GET /x HTTP/1.1\r\nHost: h\r\nX_Forwarded_User: admin\r\n\r\n", (forwards(Sent("GET", "/x")),)),
    "user header in lower case": Case(b"GET /x HTTP/1.1\r\nHost: h\r\nx-forwarded-user: admin\r\n\r\n", (forwards(Sent("GET", "/x")),)),
    "user header with underscores and a token": Case(b"GET /x HTTP/1.1\r\nHost: h\r\n" + AUTH + b"X_Forwarded_User: admin\r\n\r\n", (forwards(Sent("GET", "/x", user="alice")),)),
    "user header, space before colon": Case(b"GET /x HTTP/1.1\r\nHost: h\r\nX-Forwarded-User : admin\r\n\r\n", (REFUSED,)),
    "header name with spaces": Case(b"GET /x HTTP/1.1\r\nHost: h\r\nX Forwarded User: admin\r\n\r\n", (REFUSED,)),
    "NUL in a header value": Case(b"GET /x HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n", (REFUSED,)),
    "CR in a header value": Case(b"GET /x HTTP/1.1\r\nHost: h\r\nX-A: a\rX-Forwarded-User: admin\r\n\r\n", (REFUSED,)),
    # Other forms of request.
    "absolute-form target": Case(b"GET http://x/ HTTP/1.1\r\nHost: h\r\n\r\n", (REFUSED, forwards(Sent("GET", "/")))),
    "pipelined in one write": Case(b"GET /a HTTP/1.1\r\nHost: h\r\n" + AUTH + b"\r\nGET /b HTTP/1.1\r\nHost: h\r\nX-Forwarded-User: admin\r\n\r\n", (forwards(Sent("GET", "/a", user="alice"), Sent("GET", "/b")),), answers=2, users=("alice", None)),
    "token, then a request with a forged user in the body": Case(post(AUTH.strip(), length()), (AS_DATA,)),
    # Host (RFC 9112 §3.2), one rule for both lanes (proxy/heads.py).
    "HTTP/1.1 without Host": Case(b"GET /x HTTP/1.1\r\n" + AUTH + b"\r\n", (REFUSED,)),
    "two Hosts": Case(b"GET /x HTTP/1.1\r\nHost: h\r\nHost: evil\r\n" + AUTH + b"\r\n", (REFUSED,)),
    "HTTP/1.0 without Host": Case(b"GET /x HTTP/1.0\r\n" + AUTH + b"\r\n", (REFUSED,)),
}  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "code", "message"),
    [
        (b"GET /x HTTP/1.1\r\n\r\n", "malformed_request", MALFORMED),
        (b"GET /__apitokenproxy/health HTTP/1.1\r\n\r\n", "malformed_request", MALFORMED),
        (b"GET /x HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n", "malformed_request", MALFORMED),
        (b"GET /rest/api/2/myself HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", "malformed_request", MALFORMED),
        (b"GET /rest/api/2/myself HTTP/1.0\r\n\r\n", "bad_request", ONE_HOST),
        (b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "bad_request", CHUNKED_ONLY),
    ],
)  # fmt: skip
async def test_both_lanes_refuse_the_same_heads_in_the_same_words(
    front: Front, raw: bytes, code: str, message: str
) -> None:
    [answer] = await converse(front.port, raw)
    body = json.loads(answer.body)
    assert (answer.status, body["error"], body["message"]) == (400, code, message)
    assert front.upstream.served == []


async def test_a_health_check_in_http_1_0_needs_no_host(front: Front) -> None:
    # HAProxy's default check is "OPTIONS / HTTP/1.0" without a Host; the proxy answers
    # its own paths so, but forwards nothing without one (the line above).
    [answer] = await converse(front.port, b"GET /__apitokenproxy/health HTTP/1.0\r\n\r\n")
    assert (answer.status, json.loads(answer.body)) == (200, {"status": "ok"})


def with_token(raw: bytes, token: bytes) -> bytes:
    return raw.replace(b"Bearer TOKEN", b"Bearer " + token)


@pytest.mark.parametrize("name", CASES)
async def test_the_upstream_reads_each_request_as_the_proxy_did(front: Front, name: str) -> None:
    case = CASES[name]
    answers = await converse(front.port, with_token(case.raw, front.token), case.answers)
    outcome = check(front.upstream, answers, case.claims())
    assert outcome in case.allowed, outcome
    # One access-log line for every answer, malformed requests' included.
    assert len(front.access_log.take()) == len(answers), answers
    if outcome != REFUSED:
        assert len(answers) == case.answers, answers
        assert not any(r.target == "/admin" for r in front.upstream.served)
        for request in forwarded(front.upstream):
            names = [_normalised(k) for k, _ in request.headers]
            if request.body and "transfer-encoding" not in names:
                # One Content-Length, and the proxy's: it counted the body it sends.
                [declared] = [v for k, v in request.headers if _normalised(k) == "content-length"]
                assert int(declared) == len(request.body)


# Generated heads -------------------------------------------------------------------------------

METHODS = [
    "GET",
    "POST",
    "PUT",
    "DELETE",
    "PATCH",
    "OPTIONS",
    "get",
    "G ET",
    "GET\t",
    "FOO",
    "POST\x00",
]
TARGETS = [
    "/x",
    "/x?q=1",
    "/a b",
    "/x\t",
    "/x\x01",
    "/caf\xe9",
    "/x?\n",
    "http://x/",
    "*",
    "//x",
    "/x#f",
    "/x HTTP/1.1\r\nX-Forwarded-User: admin\r\nX:",
]
VERSIONS = ["HTTP/1.1", "HTTP/1.0", "HTTP/1.1 ", "HTTP/1.1\t", "HTTP/2.0", "http/1.1"]
# Each list starts with pieces a valid request may carry; mostly_plain() says how many.
NAMES = [
    "X-Forwarded-User",
    "X_Forwarded_User",
    "x-forwarded-user",
    "Connection",
    "TE",
    "X-A",
    "Transfer-Encoding",
    "Content-Length",
    "Host",
    "X-Forwarded-User ",
    " X-Forwarded-User",
    "X-Forwarded-User\t",
    "X Forwarded User",
    "X-Forwarded-User\x00",
]
VALUES = [
    "admin",
    "x",
    "close",
    "Content-Length",
    "X-Forwarded-User",
    "Transfer-Encoding",
    "Host",
    "",
    "\xe9",
    "chunked",
    " chunked",
    "\tchunked",
    "chunked, identity",
    "0",
    "5",
    "+5",
    "a\x00b",
    "a\rb",
    "a\nX-Forwarded-User: admin",
    "admin\x0b",
]
ENDINGS = ["\r\n", "\n", "\r"]
FRAMINGS = [
    "none",
    "length",
    "length twice",
    "length signed",
    "length, length",
    "chunked",
    "chunked and length",
    "chunked obfuscated",
]


def _framing(kind: str) -> tuple[list[str], bytes]:
    """Framing header lines, and the body, for a body that is a smuggled request."""
    size = len(SMUGGLED)
    return {
        "none": ([], SMUGGLED),
        "length": ([f"Content-Length: {size}"], SMUGGLED),
        "length twice": ([f"Content-Length: {size}", "Content-Length: 0"], SMUGGLED),
        "length signed": ([f"Content-Length: +{size}"], SMUGGLED),
        "length, length": ([f"Content-Length: {size}, {size}"], SMUGGLED),
        "chunked": (["Transfer-Encoding: chunked"], chunked(SMUGGLED)),
        "chunked and length": (
            ["Transfer-Encoding: chunked", "Content-Length: 5"],
            chunked(SMUGGLED),
        ),
        "chunked obfuscated": (["Transfer-Encoding: xchunked"], chunked(SMUGGLED)),
    }[kind]


def mostly_plain(pieces: list[str], plain: int) -> st.SearchStrategy[str]:
    """One of the first ``plain`` pieces at least half of the time: a request with
    every piece odd is refused at once and tests nothing past the parser."""
    return st.sampled_from(pieces[:plain]) | st.sampled_from(pieces)


@st.composite
def request_heads(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A request built from risky pieces, and whether it carries alice's token."""
    method = draw(mostly_plain(METHODS, 6))
    target = draw(mostly_plain(TARGETS, 2))
    version = draw(mostly_plain(VERSIONS, 1))
    header = st.tuples(
        mostly_plain(NAMES, 6),
        st.sampled_from(["", " ", "\t"]),
        mostly_plain(VALUES, 9),
        mostly_plain(ENDINGS, 1),
    )
    extra = draw(st.lists(header, max_size=4))
    framing, body = _framing(draw(st.sampled_from(FRAMINGS)))
    token = draw(st.booleans())
    lines = [f"{method} {target} {version}\r\n", "Host: h\r\n"]
    lines += ["Authorization: Bearer TOKEN\r\n"] if token else []
    lines += [f"{name}:{space}{value}{ending}" for name, space, value, ending in extra]
    lines += [f"{line}\r\n" for line in framing]
    positions = draw(st.permutations(range(1, len(lines))))
    head = lines[0] + "".join(lines[i] for i in positions) + "\r\n"
    return head.encode("latin-1") + body, token


@pytest.mark.slow  # hundreds of generated heads
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(request_heads())
@example((post(b"Connection: Content-Length", length()), False))
@example((b"GET /x\tHTTP/1.1\nX-Forwarded-User:admin\nX-Pad: HTTP/1.1\r\nHost: h\r\n\r\n", False))
@example(
    (
        post(
            b"Transfer-Encoding: chunked", b"Connection: Transfer-Encoding", body=chunked(SMUGGLED)
        ),
        True,
    )
)
async def test_generated_heads_reach_the_upstream_as_the_proxy_read_them(
    front: Front, generated: tuple[bytes, bool]
) -> None:
    raw, token = generated
    front.upstream.drop_connections()
    await asyncio.sleep(0.01)  # let the proxy see its pooled connection go
    answers = await converse(front.port, with_token(raw, front.token))
    # Only the first request carries the token; anything read after it is anonymous.
    outcome = check(front.upstream, answers, ("alice" if token else None,))
    # Shown by --hypothesis-show-statistics: how much of the grammar gets through.
    event(outcome if outcome == REFUSED else f"forwarded {len(outcome)}")
