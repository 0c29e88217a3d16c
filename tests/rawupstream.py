"""A scriptable raw-TCP upstream, and the proxy started in front of it.

``FakeUpstream`` (fakes.py) is an aiohttp application, so it can only answer
well. This one writes bytes, so it can answer the ways a broken or hostile
upstream does: bytes after a complete response, a body longer than declared,
a body where none may be, and framing that lenient parsers read differently.

It records every byte each connection carried, so a test can parse again
what really reached the upstream, and it parses requests with llhttp
(httptools), never by splitting strings. Each answer carries a serial
number (``X-Serial``, and ``resp-<n>`` in every normal body) so a test can
tell which request an answer belongs to.

What to answer is chosen by path prefix (``BEHAVIOURS``); an answer may come
with "late bytes", written ``LATE_DELAY`` seconds after it, unasked.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httptools

from apitokenproxy.app import COMPONENTS, create_app
from apitokenproxy.auth.identity import ActingAs, User
from apitokenproxy.config import config_from_dict
from apitokenproxy.errors import PasswordRejected
from apitokenproxy.ops.accesslog import AccessLog
from apitokenproxy.server import start_site

from .conftest import LANES, base_config, deep_merge
from .fakes import JIRA_USERS

LATE_DELAY = 0.05
POISON = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON"


@dataclass(frozen=True)
class ParsedRequest:
    """One request as llhttp read it off the wire."""

    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes


@dataclass(frozen=True)
class Served:
    """One request the upstream answered: which connection carried it, and what it was."""

    serial: int
    connection: int
    method: str
    target: str


@dataclass(frozen=True)
class Answer:
    """What the upstream writes for one request."""

    data: bytes
    late: bytes = b""  # written LATE_DELAY seconds later, unasked
    close: bool = False  # the connection is closed once everything is written


class RequestReader:
    """httptools callbacks collecting whole requests; ``on_request`` sees each one."""

    def __init__(self, on_request: Callable[[ParsedRequest], None] | None = None) -> None:
        self.requests: list[ParsedRequest] = []
        self._on_request = on_request
        self._parser = httptools.HttpRequestParser(self)
        self._method = b""
        self._url = bytearray()
        self._headers: list[tuple[bytes, bytes]] = []
        self._body = bytearray()

    def feed(self, data: bytes) -> None:
        """Parse more bytes; raise ValueError on anything llhttp refuses."""
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            # The proxy forwards no upgrades and no CONNECT on these paths:
            # what follows would be a tunnel, not requests.
            raise ValueError("an upgrade or CONNECT request reached the upstream") from exc
        except httptools.HttpParserError as exc:
            raise ValueError(f"llhttp refused the bytes: {exc}") from exc

    def on_message_begin(self) -> None:
        self._url.clear()
        self._headers = []
        self._body.clear()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._method = self._parser.get_method()

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        request = ParsedRequest(self._method, bytes(self._url), self._headers, bytes(self._body))
        self.requests.append(request)
        if self._on_request is not None:
            self._on_request(request)


def parse_requests(data: bytes) -> list[ParsedRequest]:
    """Every complete request in ``data`` (an unfinished one at the end is left out)."""
    reader = RequestReader()
    reader.feed(data)
    return reader.requests


# Behaviours ------------------------------------------------------------------------------


def _message(status_line: bytes, serial: int, headers: list[bytes], body: bytes = b"") -> bytes:
    lines = [status_line, b"X-Serial: %d" % serial, *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def normal_body(serial: int) -> bytes:
    return b"resp-%d" % serial


def close_delimited_body(serial: int) -> bytes:
    # Longer than one read, so a proxy that relays it does so in several pieces.
    return normal_body(serial) + b"." * 100_000


def _normal(method: str, path: str, serial: int) -> Answer:
    body = normal_body(serial)
    headers = [b"Content-Type: text/plain", b"Content-Length: %d" % len(body)]
    return Answer(_message(b"HTTP/1.1 200 OK", serial, headers, b"" if method == "HEAD" else body))


def _late_extra(method: str, path: str, serial: int) -> Answer:
    return Answer(_normal(method, path, serial).data, late=POISON)


def _overlong(method: str, path: str, serial: int) -> Answer:
    body = normal_body(serial)
    headers = [b"Content-Length: %d" % len(body)]
    return Answer(_message(b"HTTP/1.1 200 OK", serial, headers, body), late=b"POISON")


def _head_body(method: str, path: str, serial: int) -> Answer:
    if method != "HEAD":
        return _normal(method, path, serial)
    head = _message(b"HTTP/1.1 200 OK", serial, [b"Content-Length: 6"])
    return Answer(head, late=b"POISON")


def _no_content_body(method: str, path: str, serial: int) -> Answer:
    if path.endswith("/304"):
        head = _message(b"HTTP/1.1 304 Not Modified", serial, [b'ETag: "v1"'])
    else:
        head = _message(b"HTTP/1.1 204 No Content", serial, [])
    return Answer(head, late=b"POISON")


def _bad_status(method: str, path: str, serial: int) -> Answer:
    # U+00B2 in latin-1: str.isdigit() says yes, int() says no.
    body = normal_body(serial)
    headers = [b"Content-Length: %d" % len(body)]
    return Answer(_message(b"HTTP/1.1 2\xb20 OK", serial, headers, body))


def _bad_length(method: str, path: str, serial: int) -> Answer:
    return Answer(_message(b"HTTP/1.1 200 OK", serial, [b"Content-Length: \xb2"], b"resp"))


def bogus_chunk_data(size_line: str) -> bytes:
    """What a parser that reads the size with Python's int(…, 16) expects as the chunk."""
    try:
        size = abs(int(size_line, 16))
    except ValueError:
        size = 5
    return (b"BOGUS" * (size // 5 + 1))[:size]


def _chunk(method: str, path: str, serial: int) -> Answer:
    size_line = path.removeprefix("/chunk/")
    body = size_line.encode("latin-1") + b"\r\n" + bogus_chunk_data(size_line) + b"\r\n0\r\n\r\n"
    headers = [b"Transfer-Encoding: chunked"]
    return Answer(_message(b"HTTP/1.1 200 OK", serial, headers, body))


def _lf_header(method: str, path: str, serial: int) -> Answer:
    body = normal_body(serial)
    headers = [b"X-A: a\nX-Injected: 1", b"Content-Length: %d" % len(body)]
    return Answer(_message(b"HTTP/1.1 200 OK", serial, headers, body))


def _close_delimited(method: str, path: str, serial: int) -> Answer:
    head = _message(b"HTTP/1.1 200 OK", serial, [b"Content-Type: text/plain"])
    body = close_delimited_body(serial)
    # Half now, half late: the proxy must not take the first read for the whole body.
    return Answer(head + body[:50_000], late=body[50_000:], close=True)


def _chunked(method: str, path: str, serial: int) -> Answer:
    first, second = b"resp-", b"%d" % serial
    body = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\nX-Trailer: t\r\n\r\n" % (
        len(first),
        first,
        len(second),
        second,
    )
    headers = [b"Transfer-Encoding: chunked", b"Trailer: X-Trailer"]
    return Answer(_message(b"HTTP/1.1 200 OK", serial, headers, body))


def _odd_reason(method: str, path: str, serial: int) -> Answer:
    body = normal_body(serial)
    headers = [b"Content-Length: %d" % len(body)]
    return Answer(_message(b"HTTP/1.1 404 Nope, Try Elsewhere", serial, headers, body))


Behaviour = Callable[[str, str, int], Answer]

BEHAVIOURS: dict[str, Behaviour] = {
    "/late-extra": _late_extra,
    "/overlong": _overlong,
    "/head-body": _head_body,
    "/no-content-body": _no_content_body,
    "/bad-status": _bad_status,
    "/bad-length": _bad_length,
    "/chunk/": _chunk,
    "/lf-header": _lf_header,
    "/close-delimited": _close_delimited,
    "/chunked": _chunked,
    "/odd-reason": _odd_reason,
}


def answer_for(method: str, path: str, serial: int) -> Answer:
    """The answer for one request: the behaviour of the longest matching prefix, else normal."""
    matches = [prefix for prefix in BEHAVIOURS if path.startswith(prefix)]
    behaviour = BEHAVIOURS[max(matches, key=len)] if matches else _normal
    return behaviour(method, path, serial)


# The server ---------------------------------------------------------------------------------


@dataclass
class RawUpstream:
    """Recorded state of the raw upstream; start it with ``raw_upstream``."""

    url: str = ""
    connections: list[bytearray] = field(default_factory=list)
    served: list[Served] = field(default_factory=list)
    closed: set[int] = field(default_factory=set)  # connections that ended, by either side
    errors: list[str] = field(default_factory=list)  # what llhttp refused, per connection
    _server: asyncio.Server | None = None
    _open: dict[int, asyncio.Transport] = field(default_factory=dict)
    _timers: set[asyncio.TimerHandle] = field(default_factory=set)

    def requests(self) -> list[ParsedRequest]:
        """Every request received, all connections in order, parsed again by llhttp."""
        return [r for data in self.connections for r in parse_requests(bytes(data))]

    def carried(self, index: int) -> list[Served]:
        """The requests connection ``index`` carried."""
        return [s for s in self.served if s.connection == index]

    def serving(self, target: str) -> Served:
        """The one request that had this target."""
        [found] = [s for s in self.served if s.target == target]
        return found

    def drop_connections(self) -> None:
        """Close every connection and forget what was received: a fresh start."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for transport in self._open.values():
            transport.close()
        self._open.clear()
        self.connections.clear()
        self.served.clear()
        self.closed.clear()
        self.errors.clear()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.drop_connections()


class _Connection(asyncio.Protocol):
    def __init__(self, upstream: RawUpstream) -> None:
        self._upstream = upstream
        self._index = len(upstream.connections)
        upstream.connections.append(bytearray())
        self._reader = RequestReader(self._answer)
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._upstream._open[self._index] = transport

    def data_received(self, data: bytes) -> None:
        self._upstream.connections[self._index] += data
        try:
            self._reader.feed(data)
        except ValueError as exc:
            self._upstream.errors.append(f"connection {self._index}: {exc}")
            assert self._transport is not None
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        # A connection dropped by drop_connections belongs to a forgotten past.
        if self._upstream._open.get(self._index) is self._transport:
            del self._upstream._open[self._index]
            self._upstream.closed.add(self._index)

    def _answer(self, request: ParsedRequest) -> None:
        assert self._transport is not None
        serial = len(self._upstream.served) + 1
        method, target = request.method.decode("latin-1"), request.target.decode("latin-1")
        self._upstream.served.append(Served(serial, self._index, method, target))
        path = httptools.parse_url(request.target).path or b"/"
        answer = answer_for(method, path.decode("latin-1"), serial)
        self._transport.write(answer.data)
        if answer.late or answer.close:
            timer = self._loop.call_later(LATE_DELAY, self._late, answer)
            self._upstream._timers.add(timer)

    def _late(self, answer: Answer) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        self._transport.write(answer.late)
        if answer.close:
            self._transport.close()


@contextlib.asynccontextmanager
async def raw_upstream() -> AsyncIterator[RawUpstream]:
    upstream = RawUpstream()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Connection(upstream), "127.0.0.1", 0)
    upstream._server = server
    port = server.sockets[0].getsockname()[1]
    upstream.url = f"http://127.0.0.1:{port}"
    try:
        yield upstream
    finally:
        upstream.close()
        await server.wait_closed()


# The proxy in front of it ----------------------------------------------------------------------


class KnownPasswords:
    """``IdentityProvider`` for an upstream without a REST API: the fake Jira users."""

    async def check_password(self, username: str, password: str) -> User:
        for user in JIRA_USERS:
            if user.name == username and user.password == password:
                return User(user.key, user.name)
        raise PasswordRejected("wrong user name or password")

    async def session_user(self, cookie: str) -> User | None:
        return None  # no sessions without a REST API

    async def is_sysadmin(self, user: User, acting: ActingAs) -> bool:
        return False

    async def find_user(self, key: str, acting: ActingAs) -> User | None:
        return next((User(u.key, u.name) for u in JIRA_USERS if u.key == key), None)

    async def groups(self, user: User, acting: ActingAs) -> frozenset[str]:
        return frozenset()

    async def email(self, acting: ActingAs) -> str | None:
        return None


@dataclass
class AccessLines:
    """Where a proxy_in_front writes its access log, and the lines it wrote."""

    stream: io.StringIO = field(default_factory=io.StringIO)
    log: AccessLog | None = None

    def take(self) -> list[str]:
        """Every line written since the last take."""
        if self.log is not None:
            self.log.flush()
        lines = self.stream.getvalue().splitlines()
        self.stream.seek(0)
        self.stream.truncate()
        return lines


_ONE_CONNECTION = {
    "upstream": {"max_connections": 1},
    # Some rows fail authentication on purpose; none of them is about throttling.
    "auth": {"throttle": {"max_failures": 1000}},
}


@contextlib.asynccontextmanager
async def proxy_in_front(
    upstream: RawUpstream,
    lane: str,
    store_dir: Path,
    config: dict[str, Any] | None = None,
    access_log: AccessLines | None = None,
) -> AsyncIterator[int]:
    """The proxy, served as ``apitokenproxy serve`` serves it, forwarding to ``upstream``;
    yields its port.

    One upstream connection at most, so a poisoned or leaked pooled connection
    is certain to be the one the next request gets. With ``access_log``, the
    access log is on and written there.
    """
    raw = base_config(upstream.url, f"sqlite:///{store_dir / 'raw.db'}")
    logging = {"logging": {"access_log": access_log is not None}}
    for extra in (LANES[lane], _ONE_CONNECTION, logging, config or {}):
        raw = deep_merge(raw, extra)
    app = create_app(config_from_dict(raw), identity=KnownPasswords())
    runner = await start_site(app, "127.0.0.1", 0, access_log=access_log is not None)
    if access_log is not None:
        access_log.log = app[COMPONENTS].access_log
        access_log.log.stream = access_log.stream
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()
