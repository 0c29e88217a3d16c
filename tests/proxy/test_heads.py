"""The one rule for request heads (proxy/heads.py), as tables."""

from __future__ import annotations

import pytest

from apitokenproxy.proxy.framing import MALFORMED, ONLY_HTTP_1
from apitokenproxy.proxy.heads import (
    CHUNKED_ONLY,
    ONE_HOST,
    path_stays_fast,
    refusal,
    stays_fast,
)

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
    ("method", "version", "upgrade", "fast"),
    [
        ("GET", "1.1", False, True),
        ("DELETE", "1.1", False, True),
        ("OPTIONS", "1.1", False, True),
        ("GET", "1.0", False, False),
        ("GET", "1.1", True, False),
        ("PROPFIND", "1.1", False, False),
        ("CONNECT", "1.1", False, False),
    ],
)
def test_stays_fast(method: str, version: str, upgrade: bool, fast: bool) -> None:
    assert stays_fast(method, version, upgrade) is fast


@pytest.mark.parametrize(
    ("path", "fast"),
    [
        ("/rest/api/2/issue/x-1", True),
        ("/a%2fb", False),
        ("/a//b", False),
        ("/a/../b", False),
        ("/a/./b", False),
        ("/rest/de.resolution.apitokenauth/latest/user/token", False),
    ],
)
def test_path_stays_fast(path: str, fast: bool) -> None:
    assert path_stays_fast(path, _ours) is fast
