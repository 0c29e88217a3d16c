"""The attack table against a real Tomcat 10, the server Jira and Confluence run on.

Tomcat reads requests more leniently than llhttp (a tab in the request line
is a separator, a bare LF ends a line), so a proxy is safe only if what it
forwards means the same thing to Tomcat as to itself. Each row is sent over
a raw socket to the proxy, on both lanes, and judged by what Tomcat's
Servlet API reported: ``getHeader`` of the user header, every value of it,
the request line and the body length it saw (tests/peers/ReportServlet.java).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from apitokenproxy.app import create_app
from apitokenproxy.auth.identity import ActingAs, User
from apitokenproxy.config import config_from_dict
from apitokenproxy.errors import PasswordRejected
from apitokenproxy.server import start_site

from ..conftest import LANES, base_config, deep_merge
from ..peers.tomcat import Tomcat

# A JVM: run with --slow (CI does).
pytestmark = pytest.mark.slow

API = "/rest/de.resolution.apitokenauth/latest"
USERS = {"alice": "JIRAUSER10100", "Łukasz": "JIRAUSER10200", "José": "JIRAUSER10300"}


class Passwords:
    """``IdentityProvider`` for an upstream without Jira's REST API: each user's password
    is its name with ``-pw``."""

    async def check_password(self, username: str, password: str) -> User:
        if username in USERS and password == f"{username}-pw":
            return User(USERS[username], username)
        raise PasswordRejected("wrong user name or password")

    async def session_user(self, cookie: str) -> User | None:
        return None  # no sessions without a REST API

    async def is_sysadmin(self, user: User, acting: ActingAs) -> bool:
        return False

    async def find_user(self, key: str, acting: ActingAs) -> User | None:
        return next((User(k, name) for name, k in USERS.items() if k == key), None)

    async def groups(self, user: User, acting: ActingAs) -> frozenset[str]:
        return frozenset()

    async def email(self, acting: ActingAs) -> str | None:
        return None


@dataclass
class Front:
    port: int
    tomcat: Tomcat

    async def send(self, data: bytes, wait: float = 5.0, idle: float = 0.5) -> bytes:
        """Raw bytes in; what the proxy answers until it closes, or goes quiet after answering."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        answer = b""
        try:
            writer.write(data)
            with contextlib.suppress(ConnectionResetError, TimeoutError):
                while chunk := await asyncio.wait_for(reader.read(65536), idle if answer else wait):
                    answer += chunk
            return answer
        finally:
            writer.close()

    async def token(self, user: str = "alice") -> str:
        body = b'{"tokenDescription": "tomcat"}'
        basic = base64.b64encode(f"{user}:{user}-pw".encode()).decode()
        answer = await self.send(
            f"POST {API}/user/token HTTP/1.1\r\nHost: j\r\nConnection: close\r\n"
            f"Authorization: Basic {basic}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head, _, payload = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), answer
        token: str = json.loads(payload)["plainTextToken"]
        self.tomcat.reset()
        return token

    def seen(self) -> list[dict[str, Any]]:
        return self.tomcat.reports()


@contextlib.asynccontextmanager
async def proxy_before(
    tomcat: Tomcat, lane: str, store: Path, config: dict[str, Any] | None = None
) -> AsyncIterator[Front]:
    raw = base_config(tomcat.url, f"sqlite:///{store / 'tomcat.db'}")
    for extra in (LANES[lane], {"auth": {"throttle": {"max_failures": 1000}}}, config or {}):
        raw = deep_merge(raw, extra)
    runner = await start_site(
        create_app(config_from_dict(raw), identity=Passwords()), "127.0.0.1", 0, access_log=False
    )
    try:
        yield Front(runner.addresses[0][1], tomcat)
    finally:
        await runner.cleanup()


@pytest.fixture
async def front(tomcat_upstream: Tomcat, lane: str, tmp_path: Path) -> AsyncIterator[Front]:
    async with proxy_before(tomcat_upstream, lane, tmp_path) as proxied:
        yield proxied


def statuses(answer: bytes) -> list[int]:
    """Status codes of the answers in a byte stream, in order (heads start lines)."""
    return [
        int(line[9:12])
        for line in answer.split(b"\r\n")
        if line.startswith(b"HTTP/") and line[9:12].isdigit()
    ]


def forged(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Requests on which Tomcat saw a user the client chose."""
    return [r for r in reports if r["user"] not in (None, "alice") or len(r["users"]) > 1]


ANONYMOUS_ROWS = {
    # Issue 8, item 1: Connection naming Content-Length made the body a second request.
    "Connection: Content-Length": (
        b"POST /x HTTP/1.1\r\nHost: h\r\nConnection: Content-Length\r\nContent-Length: 56\r\n\r\n"
        b"GET /admin HTTP/1.1\r\nHost: h\r\nX-Forwarded-User: admin\r\n\r\n"
    ),
    "Connection: Transfer-Encoding, Content-Length": (
        b"POST /x HTTP/1.1\r\nHost: h\r\nConnection: Transfer-Encoding, Content-Length\r\n"
        b"Content-Length: 56\r\n\r\nGET /admin HTTP/1.1\r\nHost: h\r\nX-Forwarded-User: admin\r\n\r\n"
    ),
    # Issue 8, item 2: a tab and bare LFs in the request-target.
    "tab and LF in the target": (
        b"GET /x\tHTTP/1.1\nX-Forwarded-User:admin\nX-Pad: HTTP/1.1\r\nHost: h\r\n\r\n"
    ),
    "bare LF in the target": b"GET /x\nX-Forwarded-User:admin HTTP/1.1\r\nHost: h\r\n\r\n",
    "CL.TE": (
        b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /admin HTTP/1.1\r\nHost: h\r\nX-Forwarded-User: admin\r\n\r\n"
    ),
    "TE.CL": (
        b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3c\r\nGET /admin HTTP/1.1\r\nHost: h\r\nX-Forwarded-User: admin\r\nX-Pad: a\r\n\r\n0\r\n\r\n"
    ),
    "TE.TE, one obfuscated": (
        b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n"
        b"Content-Length: 4\r\n\r\n5c\r\nGET /admin HTTP/1.1\r\nHost: h\r\n\r\n0\r\n\r\n"
    ),
    "user header spelled with underscores": (
        b"GET /x HTTP/1.1\r\nHost: h\r\nX_Forwarded_User: admin\r\nConnection: close\r\n\r\n"
    ),
    "user header named in Connection": (
        b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: X-Forwarded-User, close\r\n"
        b"X-Forwarded-User: admin\r\n\r\n"
    ),
    "user header folded": (
        b"GET /x HTTP/1.1\r\nHost: h\r\nX-A: b\r\n X-Forwarded-User: admin\r\nConnection: close\r\n\r\n"
    ),
    "space before the colon": (
        b"GET /x HTTP/1.1\r\nHost: h\r\nX-Forwarded-User : admin\r\nConnection: close\r\n\r\n"
    ),
    "NUL in a value": b"GET /x HTTP/1.1\r\nHost: h\r\nX-A: a\x00\r\nConnection: close\r\n\r\n",
    "two Hosts": b"GET /x HTTP/1.1\r\nHost: h\r\nHost: admin\r\nConnection: close\r\n\r\n",
}


@pytest.mark.parametrize("row", ANONYMOUS_ROWS.values(), ids=ANONYMOUS_ROWS.keys())
async def test_no_anonymous_request_reaches_tomcat_with_a_user(front: Front, row: bytes) -> None:
    answer = await front.send(row)
    seen = front.seen()
    assert forged(seen) == [], seen
    assert not [r for r in seen if r["uri"] == "/admin"], seen
    # Whatever was forwarded, Tomcat saw one request per answer the client got.
    assert len(seen) <= len(statuses(answer)), (answer, seen)
    for report in seen:
        assert report["user"] is None


async def test_connection_cannot_remove_the_length_tomcat_reads(front: Front) -> None:
    answer = await front.send(ANONYMOUS_ROWS["Connection: Content-Length"])
    assert statuses(answer) == [200]
    (report,) = front.seen()
    assert (report["method"], report["uri"], report["body_length"]) == ("POST", "/x", 56)
    lengths = [v for k, v in report["headers"] if k == "content-length"]
    assert lengths == ["56"]


@pytest.mark.parametrize("row", ["tab and LF in the target", "bare LF in the target"])
async def test_control_bytes_in_the_target_are_refused_with_a_token_too(
    front: Front, row: str
) -> None:
    token = await front.token()
    attack = ANONYMOUS_ROWS[row].replace(
        b"Host: h\r\n", f"Host: h\r\nAuthorization: Bearer {token}\r\n".encode()
    )
    answer = await front.send(attack)
    assert statuses(answer) == [400]
    assert front.seen() == []


async def test_with_a_token_tomcat_sees_exactly_one_user_and_it_is_the_owner(
    front: Front,
) -> None:
    token = await front.token()
    spoofs = [
        "X-Forwarded-User: admin",
        "x-forwarded-user: admin",
        "X_Forwarded_User: admin",
        "X-Forwarded-User: admin\r\nX-Forwarded-User: root",
        "Connection: X-Forwarded-User\r\nX-Forwarded-User: admin",
    ]
    for spoof in spoofs:
        answer = await front.send(
            f"GET /x HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {token}\r\n{spoof}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        assert statuses(answer) == [200], spoof
    seen = front.seen()
    assert len(seen) == len(spoofs)
    for report in seen:
        assert (report["user"], report["users"]) == ("alice", ["alice"])
        assert not [k for k, _ in report["headers"] if k.replace("_", "-") == "x-forwarded-user"
                    and k != "x-forwarded-user"]  # fmt: skip


async def test_a_request_smuggled_in_a_token_users_body_stays_a_body(front: Front) -> None:
    token = await front.token()
    inner = b"GET /admin HTTP/1.1\r\nHost: h\r\nX-Forwarded-User: admin\r\n\r\n"
    answer = await front.send(
        f"POST /x HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {token}\r\n"
        f"Connection: Content-Length, close\r\nContent-Length: {len(inner)}\r\n\r\n".encode()
        + inner
    )
    assert statuses(answer) == [200]
    (report,) = front.seen()
    assert (report["uri"], report["user"], report["body_length"]) == ("/x", "alice", len(inner))


async def test_keep_alive_answers_match_their_requests(front: Front) -> None:
    """Pooled connections to Tomcat are reused, and every answer is its own request's."""
    token = await front.token()
    requests = b"".join(
        f"GET /bytes/{n} HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        for n in range(1, 6)
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", front.port)
    try:
        for n in range(1, 6):
            # One at a time on one connection, as a keep-alive client sends them.
            one = requests.split(b"\r\n\r\n")[n - 1] + b"\r\n\r\n"
            writer.write(one)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            assert await reader.readexactly(length) == b"x" * n
        writer.write(b"HEAD /bytes/7 HTTP/1.1\r\nHost: h\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert b"Content-Length: 7" in head or b"content-length: 7" in head.lower()
        writer.write(b"GET /bytes/2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        rest = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    # Nothing of the HEAD answer's announced 7 bytes came before the next answer.
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n") and rest.endswith(b"\r\n\r\nxx")
    seen = front.seen()
    assert [r["uri"] for r in seen] == [
        *(f"/bytes/{n}" for n in range(1, 6)),
        "/bytes/7",
        "/bytes/2",
    ]
    assert max(r["conn_request"] for r in seen) > 1  # the upstream connection was reused


@pytest.mark.parametrize(
    ("encoding", "user", "field"),
    [
        ("latin-1", "José", "user"),  # Tomcat reads header bytes as ISO-8859-1: exact
        ("utf-8", "Łukasz", "user_utf8"),  # for authenticators that re-decode UTF-8
        ("percent", "Łukasz", "user_url"),  # for authenticators that URL-decode
        ("percent", "alice", "user"),  # ASCII names look the same in every encoding
    ],
)
async def test_user_names_outside_ascii_reach_tomcat_as_configured(
    tomcat_upstream: Tomcat, lane: str, tmp_path: Path, encoding: str, user: str, field: str
) -> None:
    config = {"upstream": {"user_header_encoding": encoding}}
    async with proxy_before(tomcat_upstream, lane, tmp_path, config) as proxied:
        token = await proxied.token(user)
        answer = await proxied.send(
            f"GET /x HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {token}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        assert statuses(answer) == [200], answer
        (report,) = proxied.seen()
        assert report[field] == user
        assert len(report["users"]) == 1


async def test_a_name_latin_1_cannot_spell_is_a_clear_403_not_a_dropped_connection(
    front: Front,
) -> None:
    token = await front.token("Łukasz")
    answer = await front.send(
        f"GET /x HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {token}\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    body = answer.partition(b"\r\n\r\n")[2]
    assert statuses(answer) == [403]
    assert json.loads(body)["error"] == "user_name_not_sendable"
    assert "user_header_encoding" in json.loads(body)["message"]
    assert front.seen() == []
