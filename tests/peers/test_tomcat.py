"""The embedded Tomcat upstream itself: what its reports say, spoken to with raw sockets.

These pin down how Tomcat 10.1's Servlet API reads a request, which the proxy's security
tests then rely on; the lenient-parsing test records a fact the proxy must guard against.
The fixtures come from ``tests.peers.tomcat``, registered in tests/conftest.py.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from . import tomcat as tomcat_module
from .tomcat import INSTALL, Tomcat, TomcatUnavailable, start_tomcat

# A JVM: run with --slow (CI does).
pytestmark = pytest.mark.slow


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    chunks: list[int] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        return values[0] if values else None

    def report(self) -> dict[str, Any]:
        report: dict[str, Any] = json.loads(self.body)
        return report


class Raw:
    """One TCP connection to Tomcat: bytes go out exactly as written."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.reader = self.sock.makefile("rb")

    @property
    def local_port(self) -> int:
        return int(self.sock.getsockname()[1])

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self, head: bool = False) -> Response:
        status_line = self.reader.readline()
        assert status_line.startswith(b"HTTP/1.1 "), status_line
        status = int(status_line.split()[1])
        headers: list[tuple[str, str]] = []
        while (line := self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name, value.strip()))
        response = Response(status, headers, b"")
        if head or status in (204, 304):
            return response
        if (response.header("Transfer-Encoding") or "").lower() == "chunked":
            while size := int(self.reader.readline().split(b";")[0], 16):
                response.chunks.append(size)
                response.body += self.reader.read(size)
                assert self.reader.readline() == b"\r\n"
            assert self.reader.readline() == b"\r\n"  # no trailers
        elif (length := response.header("Content-Length")) is not None:
            response.body = self.reader.read(int(length))
        else:
            response.body = self.reader.read()
        return response

    def exchange(self, data: bytes, head: bool = False) -> Response:
        self.send(data)
        return self.response(head)

    def __enter__(self) -> Raw:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.reader.close()
        self.sock.close()


def test_report_shows_what_the_servlet_api_sees(tomcat_upstream: Tomcat) -> None:
    with Raw(tomcat_upstream.port) as conn:
        response = conn.exchange(
            b"POST /a/b%20c?x=1&y=%41 HTTP/1.1\r\n"
            b"Host: h\r\n"
            b"X-Forwarded-User: alice\r\n"
            b"X-Other: v\r\n"
            b"X-Forwarded-User: mallory\r\n"
            b"Content-Length: 5\r\n"
            b"\r\n"
            b"hello"
        )
        local_port = conn.local_port
    assert response.status == 200
    assert response.header("Content-Type") == "application/json"
    report = response.report()
    assert report == {
        "n": 1,
        "method": "POST",
        "uri": "/a/b%20c",  # getRequestURI: as sent, not decoded
        "query": "x=1&y=%41",
        "protocol": "HTTP/1.1",
        # getHeaderNames() lists each name once, in order of first appearance and in
        # lower case; getHeaders(name) then gives all its values: so the pairs come
        # grouped by name, not in wire order.
        "headers": [
            ["host", "h"],
            ["x-forwarded-user", "alice"],
            ["x-forwarded-user", "mallory"],
            ["x-other", "v"],
            ["content-length", "5"],
        ],
        # With two X-Forwarded-User headers, getHeader() returns the first.
        "user": "alice",
        "users": ["alice", "mallory"],
        "user_utf8": "alice",
        "user_url": "alice",
        "body_length": 5,
        "remote_port": local_port,
        "conn_request": 1,
        "connection_id": report["connection_id"],
    }
    assert tomcat_upstream.reports() == [report]


def test_chunked_request_body_is_counted_after_dechunking(tomcat_upstream: Tomcat) -> None:
    with Raw(tomcat_upstream.port) as conn:
        response = conn.exchange(
            b"PUT /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
        )
    assert response.report()["body_length"] == 7


def test_conn_request_counts_requests_on_one_keep_alive_connection(
    tomcat_upstream: Tomcat,
) -> None:
    request = b"GET /k HTTP/1.1\r\nHost: h\r\n\r\n"
    with Raw(tomcat_upstream.port) as conn:
        first = [conn.exchange(request).report() for _ in range(3)]
        port = conn.local_port
    with Raw(tomcat_upstream.port) as conn:
        second = conn.exchange(request).report()
    assert [r["n"] for r in first] == [1, 2, 3]
    assert [r["conn_request"] for r in first] == [1, 2, 3]
    assert {r["remote_port"] for r in first} == {port}
    assert len({r["connection_id"] for r in first}) == 1
    assert (second["n"], second["conn_request"]) == (4, 1)
    assert second["connection_id"] != first[0]["connection_id"]


@pytest.mark.parametrize(
    ("sent", "user", "user_utf8", "user_url"),
    [
        # Raw UTF-8 bytes: Tomcat decodes header bytes as ISO-8859-1.
        ("Łukasz".encode(), "\u00c5\u0081ukasz", "Łukasz", "\u00c5\u0081ukasz"),
        # Percent-encoded: only an application that URL-decodes gets the name.
        (b"%C5%81ukasz", "%C5%81ukasz", "%C5%81ukasz", "Łukasz"),
        # URLDecoder also turns '+' into a space...
        (b"a+b%20c", "a+b%20c", "a+b%20c", "a b c"),
        # ...and throws on a malformed escape.
        (b"%zz", "%zz", "%zz", None),
    ],
)
def test_user_decodings(
    tomcat_upstream: Tomcat, sent: bytes, user: str, user_utf8: str, user_url: str | None
) -> None:
    with Raw(tomcat_upstream.port) as conn:
        report = conn.exchange(
            b"GET /u HTTP/1.1\r\nHost: h\r\nX-Forwarded-User: " + sent + b"\r\n\r\n"
        ).report()
    assert (report["user"], report["user_utf8"], report["user_url"]) == (
        user,
        user_utf8,
        user_url,
    )
    assert report["users"] == [user]


def test_tomcat_parses_a_tab_and_bare_lf_request_line_leniently(tomcat_upstream: Tomcat) -> None:
    # Observed with Tomcat 10.1.60 (Debian 12's libtomcat10-java): accepted, not 400.
    # Tomcat takes the tab for the space before the version and a bare LF for the end of
    # a line. So a front end that reads this request line as everything up to the first
    # CRLF ("/x\tHTTP/1.1\nX-Forwarded-User: admin\nX-Pad: HTTP/1.1" as its target)
    # forwards a request in which Tomcat sees a header X-Forwarded-User: admin. The
    # proxy must never pass such a request line on.
    with Raw(tomcat_upstream.port) as conn:
        response = conn.exchange(
            b"GET /x\tHTTP/1.1\nX-Forwarded-User: admin\nX-Pad: HTTP/1.1\r\nHost: h\r\n\r\n"
        )
    assert response.status == 200
    report = response.report()
    assert (report["method"], report["uri"], report["protocol"]) == ("GET", "/x", "HTTP/1.1")
    assert report["user"] == "admin"
    assert report["headers"] == [
        ["x-forwarded-user", "admin"],
        ["x-pad", "HTTP/1.1"],
        ["host", "h"],
    ]


@pytest.mark.parametrize("status", [200, 201, 404, 500, 503])
def test_status_path_answers_that_status_with_the_report(
    tomcat_upstream: Tomcat, status: int
) -> None:
    with Raw(tomcat_upstream.port) as conn:
        response = conn.exchange(f"GET /status/{status} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
    assert response.status == status
    assert response.report()["uri"] == f"/status/{status}"
    assert response.header("Content-Length") == str(len(response.body))


@pytest.mark.parametrize("status", [204, 304])
def test_status_path_without_body(tomcat_upstream: Tomcat, status: int) -> None:
    with Raw(tomcat_upstream.port) as conn:
        response = conn.exchange(f"GET /status/{status} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
        # The connection stays usable: nothing was sent after the head.
        after = conn.exchange(b"GET /after HTTP/1.1\r\nHost: h\r\n\r\n")
    assert response.status == status
    assert response.header("Content-Length") is None
    assert response.header("Transfer-Encoding") is None
    assert after.report()["conn_request"] == 2
    assert [r["uri"] for r in tomcat_upstream.reports()] == [f"/status/{status}", "/after"]


def test_bytes_path_sends_a_content_length(tomcat_upstream: Tomcat) -> None:
    with Raw(tomcat_upstream.port) as conn:
        response = conn.exchange(b"GET /bytes/100000 HTTP/1.1\r\nHost: h\r\n\r\n")
        head = conn.exchange(b"HEAD /bytes/7 HTTP/1.1\r\nHost: h\r\n\r\n", head=True)
    assert response.status == 200
    assert response.header("Content-Length") == "100000"
    assert response.body == b"x" * 100000
    assert head.header("Content-Length") == "7"
    assert [r["method"] for r in tomcat_upstream.reports()] == ["GET", "HEAD"]


@pytest.mark.parametrize("n", [0, 1, 10, 300000])
def test_chunked_path_sends_chunks(tomcat_upstream: Tomcat, n: int) -> None:
    with Raw(tomcat_upstream.port) as conn:
        response = conn.exchange(f"GET /chunked/{n} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
    assert response.status == 200
    assert response.header("Content-Length") is None
    assert response.header("Transfer-Encoding") == "chunked"
    assert response.body == b"x" * n
    assert len(response.chunks) >= min(n, 4)  # one a flush, at least


def test_control_paths_are_not_recorded(tomcat: Tomcat) -> None:
    with Raw(tomcat.port) as conn:
        conn.exchange(b"GET /one HTTP/1.1\r\nHost: h\r\n\r\n")
    assert tomcat.reports()[-1]["uri"] == "/one"
    tomcat.reset()
    assert tomcat.reports() == []
    with Raw(tomcat.port) as conn:
        report = conn.exchange(b"GET /two HTTP/1.1\r\nHost: h\r\n\r\n").report()
    assert (report["n"], report["conn_request"]) == (1, 1)
    assert [r["uri"] for r in tomcat.reports()] == ["/two"]


def test_without_java_the_error_names_the_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TomcatUnavailable, match=re.escape(INSTALL)):
        start_tomcat(tmp_path)


def test_without_the_jars_the_error_names_the_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tomcat_module, "JAVA_DIR", tmp_path)
    with pytest.raises(TomcatUnavailable, match=re.escape(INSTALL)):
        tomcat_module.compile_servlet(tmp_path)


def test_the_fixture_fails_rather_than_skips_without_java(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_needs_tomcat.py").write_text(
        "def test_it(tomcat):\n    pass\n", encoding="utf-8"
    )
    repo = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "pytest", "-q", "-p", "tests.peers.tomcat"]
    done = subprocess.run(  # noqa: S603 - this Python, running pytest
        [*command, "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env={**os.environ, "PATH": str(tmp_path), "PYTHONPATH": str(repo)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 error" in done.stdout, done.stdout
    assert "skipped" not in done.stdout, done.stdout
    assert INSTALL in done.stdout, done.stdout


def test_a_bad_connector_property_stops_the_start(tomcat: Tomcat) -> None:
    # In the session Tomcat's build directory: the servlet is compiled already.
    with pytest.raises(TomcatUnavailable, match="not a connector property: noSuchThing=1"):
        start_tomcat(tomcat.log.parent, connector={"noSuchThing": "1"})
