"""Reading Authorization headers: a table of what parses and what is refused."""

from __future__ import annotations

import base64

import pytest

from apitokenproxy.auth.credentials import (
    BasicCredentials,
    BearerCredentials,
    Credentials,
    OtherCredentials,
    TokenAttempt,
    misplaced_token,
    parse_authorization,
    password_in_query,
    token_in,
)
from apitokenproxy.auth.tokens import format_token
from apitokenproxy.errors import MalformedCredentials


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


def basic(text: str) -> str:
    return "Basic " + b64(text.encode())


TOKEN = format_token(7, "A" * 32)
OTHER = format_token(8, "B" * 32)


@pytest.mark.parametrize(
    ("positions", "elsewhere", "misplaced"),
    [
        ((), "", False),
        (("alice", "pw"), "", False),
        ((TOKEN,), "", False),  # Bearer TOKEN
        (("alice", TOKEN), "", False),  # Basic alice:TOKEN
        ((TOKEN, ""), "", False),  # Basic TOKEN:, the token as user name
        ((TOKEN, "x"), "", False),  # Basic TOKEN:x, likewise
        (("alice", "atpx_nonsense"), "", False),  # one (bad) token alone: the verifier's
        (("alice", "atpx_"), "", False),
        # Wrapped, padded, glued, in another case, or two of them: ours, and broken.
        ((f'"{TOKEN}"',), "", True),
        ((f"<{TOKEN}>",), "", True),
        ((f"'{TOKEN}'",), "", True),
        ((f"({TOKEN})",), "", True),
        ((f"{TOKEN};",), "", True),
        ((f"token={TOKEN}",), "", True),
        ((f"x{TOKEN}",), "", True),
        ((TOKEN.upper(),), "", True),
        ((TOKEN.replace("atpx_", "Atpx_"),), "", True),
        (("alice", f" {TOKEN}"), "", True),
        (("alice", f"{TOKEN} "), "", True),
        (("alice", f"\t{TOKEN}"), "", True),
        (("alice", f'"{TOKEN}"'), "", True),
        (("alice", f"<{TOKEN}>"), "", True),
        (("alice", f"{TOKEN}\n"), "", True),
        (("alice", f"pw{TOKEN}"), "", True),
        ((f" {TOKEN}", ""), "", True),
        ((f"alice {TOKEN}", "pw"), "", True),
        ((TOKEN, OTHER), "", True),  # two tokens: which one is meant?
        ((TOKEN, TOKEN), "", True),
        ((TOKEN, f"x{OTHER}"), "", True),
        (("alice", "my-atpx_password"), "", True),  # a password with the prefix: a known limit
        (("alice", "ATPX_pw"), "", True),
        # A scheme with no token position: any prefix in the whole value.
        ((), f"Token {TOKEN}", True),
        ((), TOKEN, True),
        ((), "OAuth oauth_token=ATPX_1", True),
        ((), 'OAuth oauth_consumer_key="x"', False),
    ],
)
def test_misplaced_token(positions: tuple[str, ...], elsewhere: str, misplaced: bool) -> None:
    assert misplaced_token(positions, elsewhere) is misplaced


@pytest.mark.parametrize(
    ("value", "attempt"),
    [
        (f"Bearer {TOKEN}", TokenAttempt(TOKEN, None)),
        (basic(f"alice:{TOKEN}"), TokenAttempt(TOKEN, "alice")),
        (basic(f"{TOKEN}:"), TokenAttempt(TOKEN, None)),
        (basic(f"{TOKEN}:x"), TokenAttempt(TOKEN, None)),
        (basic("alice:pw"), None),
        ("Bearer jira-personal-access-token", None),
    ],
)
def test_a_token_alone_in_a_token_position_is_read(value: str, attempt: TokenAttempt) -> None:
    assert token_in(parse_authorization([value])) == attempt


@pytest.mark.parametrize(
    "value",
    [
        f'Bearer "{TOKEN}"',
        f"Bearer <{TOKEN}>",
        f"Bearer x{TOKEN}",
        f"Bearer {TOKEN.upper()}",
        basic(f"alice: {TOKEN}"),
        basic(f"alice:{TOKEN} "),
        basic("alice:\t" + TOKEN),
        basic(f'alice:"{TOKEN}"'),
        basic(f"alice:<{TOKEN}>"),
        basic(f" {TOKEN}:"),
        basic(f"{TOKEN}:{OTHER}"),
        basic(f"alice:pw{TOKEN}"),
        basic("alice:my-atpx_password"),
        f"Token {TOKEN}",
        f"OAuth oauth_token={TOKEN.upper()}",
    ],
)
def test_a_token_anywhere_else_is_malformed(value: str) -> None:
    with pytest.raises(MalformedCredentials, match="alone"):
        parse_authorization([value])


def test_secrets_are_hidden_from_repr() -> None:
    assert "s3cr3t" not in repr(BasicCredentials("alice", "s3cr3t"))
    assert "s3cr3t" not in repr(BearerCredentials("s3cr3t"))


@pytest.mark.parametrize(
    ("target", "password"),
    [
        ("/rest/api/2/issue/X-1", False),
        ("/rest/api/2/issue/X-1?", False),
        ("/x?os_username=alice&os_password=pw", True),
        ("/x?os_password=pw", True),
        ("/x?os_password", True),
        ("/x?a=1&os_password=", True),
        ("/x?os%5Fpassword=pw", True),
        ("/x?os%5fpassword=pw", True),
        ("/x?%6F%73%5F%70%61%73%73%77%6F%72%64=pw", True),
        ("/x?OS_PASSWORD=pw", False),  # Tomcat's parameter names are case-sensitive
        ("/x?os_Password=pw", False),
        ("/x?os_passwords=pw", False),
        ("/x?xos_password=pw", False),
        ("/x?jql=text~os_password", False),  # in a value only
        ("/x?q=a%26os_password%3Dpw", False),  # an escaped & is not a separator
        ("/x?a=1;os_password=pw", False),  # Tomcat splits on & only
        ("/os_password?x=1", False),  # the path is not the query
        ("/x?os+password=pw", False),
        ("/os_password/x?a=1", False),  # in the path, not the query
        ("/a%20b/x?os%5Fpassword=pw", True),
        ("/a%20b/x?y=1", False),
    ],
)
def test_password_in_query(target: str, password: bool) -> None:
    assert password_in_query(target) is password
