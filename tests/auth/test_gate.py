"""The data path's decision table: which credentials are checked, forwarded or refused."""

from __future__ import annotations

import base64

import pytest

from apitokenproxy.auth.credentials import TokenAttempt
from apitokenproxy.auth.gate import AS_IS, OTHER_SCHEME, Admission, classify
from apitokenproxy.auth.tokens import format_token
from apitokenproxy.errors import Unauthorized

TOKEN = format_token(5, "A" * 32)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("values", "allow_password", "expected"),
    [
        ([], True, AS_IS),
        ([], False, AS_IS),
        ([basic("alice", TOKEN)], False, TokenAttempt(TOKEN, "alice")),
        ([f"Bearer {TOKEN}"], False, TokenAttempt(TOKEN, None)),
        # Forwarded as it is, but marked: auth.allowed_networks applies to passwords.
        (
            [basic("alice", "hunter2")],
            True,
            Admission(None, False, password=True, outcome="password", claimed_user="alice"),
        ),
        (["Bearer jira-personal-access-token"], False, OTHER_SCHEME),
        (["Negotiate YII="], False, OTHER_SCHEME),
        # A "password" with the prefix is a (bad) token, never sent upstream as a password.
        ([basic("alice", "atpx_not-really")], True, TokenAttempt("atpx_not-really", "alice")),
        # The token as the user name, as single-field "API key" tools send it.
        ([basic(TOKEN, "")], False, TokenAttempt(TOKEN, None)),
        ([basic(TOKEN, "x")], False, TokenAttempt(TOKEN, None)),
        # Tabs and runs of spaces still separate the scheme from the token.
        ([f"Bearer\t{TOKEN}"], False, TokenAttempt(TOKEN, None)),
        ([f"Bearer   {TOKEN}"], False, TokenAttempt(TOKEN, None)),
    ],
)
def test_classify(
    values: list[str], allow_password: bool, expected: TokenAttempt | Admission
) -> None:
    assert classify(values, allow_password=allow_password) == expected


@pytest.mark.parametrize(
    ("values", "allow_password", "fragment", "reason"),
    [
        ([basic("alice", "hunter2")], False, "create an API token", "password_disabled"),
        ([basic("a", "b"), basic("a", "b")], True, "exactly one", "malformed"),
        (["Basic %%%"], True, "base64", "malformed"),
    ],
)
def test_classify_refuses(
    values: list[str], allow_password: bool, fragment: str, reason: str
) -> None:
    with pytest.raises(Unauthorized, match=fragment) as refused:
        classify(values, allow_password=allow_password)
    assert refused.value.reason == reason


def test_token_attempt_hides_the_token() -> None:
    assert TOKEN not in repr(TokenAttempt(TOKEN, "alice"))
