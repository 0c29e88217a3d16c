"""The proxy's own framing: pure tables, no event loop."""

from __future__ import annotations

import httptools
import pytest

from apitokenproxy.errors import BadRequest
from apitokenproxy.proxy.framing import (
    Body,
    chunk,
    error,
    origin_form,
    request_head,
    response_body,
    response_head,
)

from .rewriting import rewritten


@pytest.mark.parametrize(
    ("method", "target", "sent"),
    [
        ("GET", b"/rest/api/2/issue/X-1?expand=names", "/rest/api/2/issue/X-1?expand=names"),
        ("GET", b"/a%20b/%E2%82%AC", "/a%20b/%E2%82%AC"),
        ("GET", b"http://jira.example.com/rest/x?a=1", "/rest/x?a=1"),
        ("GET", b"HTTPS://jira.example.com", "/"),
        ("GET", b"http://jira.example.com?q", "/?q"),
        ("OPTIONS", b"*", "*"),
    ],
)
def test_targets_sent_upstream(method: str, target: bytes, sent: str) -> None:
    assert origin_form(method, target) == sent


@pytest.mark.parametrize(
    "target",
    [
        b"/x\tHTTP/1.1\nX-Forwarded-User:admin",  # issue 8, item 2: Tomcat splits on HT, ends on LF
        b"/x\t",
        b"/x\n",
        b"/x\r",
        b"/x y",
        b"/x\x00",
        b"/x\x7f",
        b"/caf\xc3\xa9",  # raw UTF-8: must be percent-encoded
        b"/\xff",
        b"",
        b"*",  # only for OPTIONS
        b"jira.example.com:443",  # authority form is for CONNECT
        b"x/y",
    ],
)
def test_targets_refused(target: bytes) -> None:
    with pytest.raises(BadRequest):
        origin_form("GET", target)


def parse_request(data: bytes) -> tuple[list[tuple[bytes, bytes]], bytes, int]:
    """What llhttp makes of bytes the proxy wrote: headers, body, number of requests."""

    class Sink:
        def __init__(self) -> None:
            self.headers: list[tuple[bytes, bytes]] = []
            self.body = b""
            self.messages = 0

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers.append((name, value))

        def on_body(self, body: bytes) -> None:
            self.body += body

        def on_message_complete(self) -> None:
            self.messages += 1

    sink = Sink()
    httptools.HttpRequestParser(sink).feed_data(data)
    return sink.headers, sink.body, sink.messages


@pytest.mark.parametrize(
    ("method", "headers", "body", "length_header"),
    [
        ("GET", [("Host", "j")], b"", None),
        ("POST", [("Host", "j")], b"", b"0"),
        ("POST", [("Host", "j"), ("Content-Length", "56")], b"abc", b"3"),
        (
            "PUT",
            [("Host", "j"), ("content_length", "9"), ("Transfer-Encoding", "chunked")],
            b"xy",
            b"2",
        ),
        ("DELETE", [("Host", "j")], b"z", b"1"),
    ],
)
def test_the_request_carries_exactly_the_length_the_proxy_counted(
    method: str, headers: list[tuple[str, str]], body: bytes, length_header: bytes | None
) -> None:
    kept = rewritten(headers)
    data = request_head(method, "/x", kept, len(body)) + body
    parsed, parsed_body, messages = parse_request(data)
    lengths = [v for k, v in parsed if k.lower() == b"content-length"]
    assert lengths == ([length_header] if length_header is not None else [])
    assert not [k for k, _ in parsed if k.lower().replace(b"_", b"-") == b"transfer-encoding"]
    assert (parsed_body, messages) == (body, 1)


def test_a_body_of_unknown_length_is_chunked_by_the_proxy() -> None:
    kept = rewritten([("Content-Length", "3")])
    data = request_head("POST", "/x", kept, None) + chunk(b"abc") + b"0\r\n\r\n"
    parsed, body, messages = parse_request(data)
    assert (body, messages) == (b"abc", 1)
    assert [v for k, v in parsed if k == b"Transfer-Encoding"] == [b"chunked"]
    assert not [k for k, _ in parsed if k.lower() == b"content-length"]


@pytest.mark.parametrize(
    ("method", "status", "headers", "body", "length"),
    [
        ("GET", 200, [("Content-Length", "5")], Body.LENGTH, 5),
        ("GET", 200, [("Transfer-Encoding", "chunked")], Body.CHUNKED, None),
        ("GET", 200, [("Transfer-Encoding", "gzip, chunked")], Body.CHUNKED, None),
        ("GET", 200, [("Transfer-Encoding", "gzip")], Body.CLOSE, None),
        ("GET", 200, [], Body.CLOSE, None),
        ("GET", 204, [("Content-Length", "5")], Body.NONE, None),
        ("GET", 304, [("Content-Length", "10")], Body.NONE, 10),
        ("GET", 103, [], Body.NONE, None),
        ("HEAD", 200, [("Content-Length", "10")], Body.NONE, 10),
        ("HEAD", 200, [("Transfer-Encoding", "chunked")], Body.NONE, None),
    ],
)
def test_response_bodies(
    method: str, status: int, headers: list[tuple[str, str]], body: Body, length: int | None
) -> None:
    assert response_body(method, status, headers) == (body, length)


@pytest.mark.parametrize(
    ("body", "length", "close", "framing_lines"),
    [
        (Body.LENGTH, 5, False, ["Content-Length: 5"]),
        (Body.CHUNKED, None, False, ["Transfer-Encoding: chunked"]),
        (Body.CLOSE, None, False, ["Transfer-Encoding: chunked"]),  # re-chunked: the client stays
        (Body.NONE, 10, False, ["Content-Length: 10"]),  # HEAD keeps the size it announces
        (Body.NONE, None, True, ["Connection: close"]),
    ],
)
def test_the_client_gets_the_proxys_framing(
    body: Body, length: int | None, close: bool, framing_lines: list[str]
) -> None:
    upstream = [
        ("Content-Type", "text/plain"),
        ("Content-Length", "999"),
        ("transfer-encoding", "x"),
    ]
    head = response_head(200, upstream, body, length, close=close).decode()
    lines = head.split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    assert lines[1:-2] == ["Content-Type: text/plain", *framing_lines]
    assert head.endswith("\r\n\r\n")


@pytest.mark.parametrize(
    ("status", "line"),
    [(200, "HTTP/1.1 200 OK"), (404, "HTTP/1.1 404 Not Found"), (299, "HTTP/1.1 299 ")],
)
def test_reason_phrases_are_the_standard_ones(status: int, line: str) -> None:
    head = response_head(status, [], Body.LENGTH, 0, close=False).decode()
    assert head.split("\r\n")[0] == line


@pytest.mark.parametrize("value", ["a\tb", "caf\xe9", "\xa0\xff", "", "~!@#$%^&*()"])
def test_tabs_and_latin1_values_pass(value: str) -> None:
    head = response_head(200, [("X-A", value)], Body.LENGTH, 0, close=False)
    assert f"\r\nX-A: {value}\r\n".encode("latin-1") in head


def test_error_answers_to_head_have_no_body() -> None:
    full = error(
        401, "unauthorized", "no", [("WWW-Authenticate", "Basic")], head_only=False, close=False
    )
    head_only = error(
        401, "unauthorized", "no", [("WWW-Authenticate", "Basic")], head_only=True, close=False
    )
    assert full.startswith(head_only) and head_only.endswith(b"\r\n\r\n")
    assert len(full) > len(head_only)
    assert b"Content-Length: " + str(len(full) - len(head_only)).encode() in head_only


def test_chunks() -> None:
    assert chunk(b"Wikipedia") == b"9\r\nWikipedia\r\n"
    assert chunk(b"x" * 255)[:4] == b"ff\r\n"
