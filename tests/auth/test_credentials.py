"""Reading Authorization headers: a table of what parses and what is refused."""

from __future__ import annotations

import base64

import pytest

from apitokenproxy.auth.credentials import (
    BasicCredentials,
    BearerCredentials,
    Credentials,
    MalformedCredentials,
    OtherCredentials,
    parse_authorization,
)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], None),
        ([f"Basic {b64(b'alice:pw')}"], BasicCredentials("alice", "pw")),
        ([f"basic {b64(b'alice:pw')}"], BasicCredentials("alice", "pw")),
        (
            [f"Basic   {b64(b'alice:pw:with:colons')}  "],
            BasicCredentials("alice", "pw:with:colons"),
        ),
        ([f"Basic {b64(b'alice:')}"], BasicCredentials("alice", "")),
        ([f"Basic {b64('jürgen:pässword'.encode())}"], BasicCredentials("jürgen", "pässword")),
        (["Bearer atpx_1_abc"], BearerCredentials("atpx_1_abc")),
        (["bearer   tok  "], BearerCredentials("tok")),
        (['OAuth oauth_consumer_key="x"'], OtherCredentials("OAuth")),
        (["Negotiate YII="], OtherCredentials("Negotiate")),
    ],
)
def test_parses(values: list[str], expected: Credentials | None) -> None:
    assert parse_authorization(values) == expected


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        (["Basic a", "Basic b"], "exactly one"),
        (["Basic !!!"], "base64"),
        (["Basic YWxpY2U"], "base64"),
        ([f"Basic {b64(b'no-colon')}"], "user:password"),
        ([f"Basic {b64(b':pw')}"], "empty user name"),
        ([f"Basic {b64(bytes([0xFF, 0xFE, 0x3A]))}"], "UTF-8"),
        (["Basic " + "A" * 10_000], "too long"),
        (["Bearer"], "exactly one token"),
        (["Bearer a b"], "exactly one token"),
        (["Bearer a,b"], "exactly one token"),
        ([""], "empty"),
        (["   "], "empty"),
        # Our token under no scheme, or an unknown one: refused, never forwarded.
        (["atpx_1_" + "A" * 38], "Bearer TOKEN or Basic"),
        (["Token atpx_1_" + "A" * 38], "Bearer TOKEN or Basic"),
        (["token=atpx_1_" + "A" * 38], "Bearer TOKEN or Basic"),
    ],
)
def test_refuses(values: list[str], fragment: str) -> None:
    with pytest.raises(MalformedCredentials, match=fragment):
        parse_authorization(values)


def test_secrets_are_hidden_from_repr() -> None:
    assert "s3cr3t" not in repr(BasicCredentials("alice", "s3cr3t"))
    assert "s3cr3t" not in repr(BearerCredentials("s3cr3t"))
