"""Header rewriting, as tables: what is stripped, what is kept, what is injected."""

from __future__ import annotations

import pytest

from apitokenproxy.errors import UnsendableUserName
from apitokenproxy.proxy.client import ClientView
from apitokenproxy.proxy.headers import (
    Injection,
    connection_named,
    end_to_end,
    for_client,
)

from .rewriting import rewritten

IDENTITY = ("X-Forwarded-User", "X-Proxy-Secret")


def upstream(
    headers: list[tuple[str, str]], strip_authorization: bool = True
) -> list[tuple[str, str]]:
    return rewritten(
        headers,
        user_header=IDENTITY[0],
        secret_header=IDENTITY[1],
        user_name="alice",
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


UPSTREAM_ANSWER = [
    ("Content-Type", "application/json"),
    ("Set-Cookie", "JSESSIONID=abc; Path=/; HttpOnly"),
    ("set-cookie2", "old=1"),
    ("Set_Cookie", "spelled=1"),
    ("X-Apitokenproxy-Token-Expiration", "forged"),
    ("X-Request-Id", "upstream's"),
]


@pytest.mark.parametrize(
    ("token", "request_id", "kept"),
    [
        (False, None, [("Content-Type", "application/json"),
                       ("Set-Cookie", "JSESSIONID=abc; Path=/; HttpOnly"), ("set-cookie2", "old=1"),
                       ("Set_Cookie", "spelled=1"), ("X-Request-Id", "upstream's")]),
        (False, "r1", [("Content-Type", "application/json"),
                       ("Set-Cookie", "JSESSIONID=abc; Path=/; HttpOnly"), ("set-cookie2", "old=1"),
                       ("Set_Cookie", "spelled=1"), ("X-Request-Id", "r1")]),
        (True, None, [("Content-Type", "application/json"), ("X-Request-Id", "upstream's")]),
        (True, "r1", [("Content-Type", "application/json"), ("X-Request-Id", "r1")]),
    ],
)  # fmt: skip
def test_an_answer_to_a_token_keeps_no_cookie(
    token: bool, request_id: str | None, kept: list[tuple[str, str]]
) -> None:
    """Set-Cookie (and Set-Cookie2, in any spelling) go from an answer to a
    token-authenticated request only; browser sessions keep theirs."""
    assert for_client(UPSTREAM_ANSWER, request_id, token=token) == kept


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


def injection(encoding: str = "latin-1") -> Injection:
    return Injection(
        user_header="X-Forwarded-User",
        identity_headers=IDENTITY,
        secret=(("X-Proxy-Secret", "s3cret"),),
        encoding=encoding,
    )


@pytest.mark.parametrize(
    ("encoding", "name", "sent"),
    [
        ("latin-1", "alice", "alice"),
        ("latin-1", "jürgen", "jürgen"),
        ("utf-8", "jürgen", "jürgen".encode().decode("latin-1")),
        ("percent", "jürgen", "j%C3%BCrgen"),
        ("percent", "a b", "a%20b"),
    ],
)
def test_the_user_header_says_each_name_the_same_every_time(
    encoding: str, name: str, sent: str
) -> None:
    inject = injection(encoding)
    view = ClientView("198.51.100.7", "https", "jira.example.com", "198.51.100.7")
    for _ in range(3):  # made once per name, then remembered
        headers = inject.rewrite(
            [("Host", "jira.example.com"), ("X-Forwarded-User", "admin")],
            view,
            user_name=name,
            strip_authorization=True,
            request_id="r-1",
        )
        assert headers == [
            ("Host", "jira.example.com"),
            ("X-Forwarded-For", "198.51.100.7"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "jira.example.com"),
            ("X-Request-Id", "r-1"),
            ("X-Forwarded-User", sent),
            ("X-Proxy-Secret", "s3cret"),
        ]
        identity = inject.identity(name)
        identity.append(("X-Injected-By-Caller", "x"))  # a copy: the remembered one stays
    assert inject.identity(name) == [("X-Forwarded-User", sent), ("X-Proxy-Secret", "s3cret")]


@pytest.mark.parametrize(("encoding", "name"), [("latin-1", "日本"), ("utf-8", "a\nb")])
def test_an_unsendable_name_is_refused_every_time(encoding: str, name: str) -> None:
    inject = injection(encoding)
    for _ in range(2):
        with pytest.raises(UnsendableUserName):
            inject.identity(name)
