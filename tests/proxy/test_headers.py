"""Header rewriting, as tables: what is stripped, what is kept, what is injected."""

from __future__ import annotations

import pytest

from apitokenproxy.proxy.headers import connection_named, end_to_end, for_client, for_upstream

IDENTITY = ("X-Forwarded-User", "X-Proxy-Secret")


def upstream(
    headers: list[tuple[str, str]], strip_authorization: bool = True
) -> list[tuple[str, str]]:
    return for_upstream(
        headers,
        identity_headers=IDENTITY,
        inject=[("X-Forwarded-User", "alice")],
        strip_authorization=strip_authorization,
    )


@pytest.mark.parametrize(
    "spoof",
    [
        ("X-Forwarded-User", "admin"),
        ("x-forwarded-user", "admin"),
        ("X_FORWARDED_USER", "admin"),
        ("x_forwarded-user", "admin"),
        (" X-Forwarded-User", "admin"),
        ("X-Forwarded-User", ""),
        ("X-Proxy-Secret", "guess"),
        ("x_proxy_secret", "guess"),
    ],
)
def test_identity_headers_are_stripped_in_any_spelling(spoof: tuple[str, str]) -> None:
    assert upstream([spoof, ("Accept", "*/*")]) == [
        ("Accept", "*/*"),
        ("X-Forwarded-User", "alice"),
    ]


@pytest.mark.parametrize(
    ("headers", "kept"),
    [
        ([("Connection", "close"), ("Keep-Alive", "1"), ("TE", "trailers"), ("Trailer", "x"),
          ("Transfer-Encoding", "chunked"), ("Upgrade", "h2c"), ("Proxy-Connection", "x"),
          ("Proxy-Authorization", "x"), ("Proxy-Authenticate", "x")], []),
        ([("Connection", "X-A, x_b"), ("X-A", "1"), ("X-B", "2"), ("X-C", "3")], [("X-C", "3")]),
        ([("Connection", "X-Forwarded-User"), ("X-Forwarded-User", "admin")], []),
        ([("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")], [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]),
    ],
)  # fmt: skip
def test_hop_by_hop_and_connection_named_headers_go(
    headers: list[tuple[str, str]], kept: list[tuple[str, str]]
) -> None:
    assert end_to_end(headers) == kept
    assert for_client(headers) == kept


@pytest.mark.parametrize(
    "name", ["X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded", "Expect"]
)
def test_forwarding_and_expect_headers_are_always_recomputed(name: str) -> None:
    assert upstream([(name, "x")]) == [("X-Forwarded-User", "alice")]


def test_authorization_is_stripped_only_when_asked() -> None:
    auth = [("Authorization", "Basic eDp5")]
    assert ("Authorization", "Basic eDp5") not in upstream(auth)
    assert ("Authorization", "Basic eDp5") in upstream(auth, strip_authorization=False)


def test_host_and_end_to_end_headers_keep_their_order() -> None:
    headers = [("Host", "jira.example.com"), ("Accept", "a"), ("Cookie", "c=1"), ("Accept", "b")]
    assert upstream(headers)[:4] == headers


def test_connection_named_normalises() -> None:
    assert connection_named([("connection", " Keep-Alive , X_Y ,"), ("Connection", "z")]) == {
        "keep-alive", "x-y", "z",
    }  # fmt: skip
