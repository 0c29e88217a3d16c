"""The one rule for request heads (proxy/heads.py), as tables."""

from __future__ import annotations

import pytest

from apitokenproxy.proxy.framing import MALFORMED, ONLY_HTTP_1
from apitokenproxy.proxy.heads import CHUNKED_ONLY, ONE_HOST, refusal, stays_fast

BAD, BROKEN = "bad_request", "malformed_request"


@pytest.mark.parametrize(
    ("version", "hosts", "codings", "forwarded", "refused"),
    [
        ("1.1", 1, (), True, None),
        ("1.0", 1, (), True, None),
        ("1.0", 0, (), False, None),  # HTTP/1.0 may leave Host out of a health check
        ("1.0", 0, (), True, (BAD, ONE_HOST)),  # but the upstream is sent HTTP/1.1
        ("1.1", 0, (), False, (BROKEN, MALFORMED)),  # RFC 9112 §3.2, as aiohttp's parser says
        ("1.1", 2, (), False, (BROKEN, MALFORMED)),
        ("1.0", 2, (), False, (BROKEN, MALFORMED)),
        ("0.9", 0, (), False, (BAD, ONLY_HTTP_1)),
        ("2.0", 1, (), False, (BAD, ONLY_HTTP_1)),
        ("1.1", 1, ("chunked",), True, None),
        ("1.1", 1, ("gzip", "chunked"), True, (BAD, CHUNKED_ONLY)),
        ("1.1", 1, ("chunked", "chunked"), True, (BAD, CHUNKED_ONLY)),
        ("1.1", 1, ("identity",), False, (BAD, CHUNKED_ONLY)),
    ],
)
def test_refusal(
    version: str,
    hosts: int,
    codings: tuple[str, ...],
    forwarded: bool,
    refused: tuple[str, str] | None,
) -> None:
    error = refusal(version, hosts, codings, forwarded=forwarded)
    assert (None if error is None else (error.code, error.message)) == refused
    assert error is None or error.status == 400


def _ours(path: str) -> bool:
    return path.startswith("/rest/de.resolution.apitokenauth/")


@pytest.mark.parametrize(
    ("method", "path", "version", "upgrade", "fast"),
    [
        ("GET", "/rest/api/2/issue/x-1", "1.1", False, True),
        ("DELETE", "/x", "1.1", False, True),
        ("OPTIONS", "/x", "1.1", False, True),
        ("GET", "/x", "1.0", False, False),
        ("GET", "/x", "1.1", True, False),
        ("PROPFIND", "/x", "1.1", False, False),
        ("CONNECT", "/x", "1.1", False, False),
        ("GET", "/a%2fb", "1.1", False, False),
        ("GET", "/a//b", "1.1", False, False),
        ("GET", "/a/../b", "1.1", False, False),
        ("GET", "/a/./b", "1.1", False, False),
        ("GET", "/rest/de.resolution.apitokenauth/latest/user/token", "1.1", False, False),
    ],
)
def test_stays_fast(method: str, path: str, version: str, upgrade: bool, fast: bool) -> None:
    assert stays_fast(method, path, version, upgrade, _ours) is fast
