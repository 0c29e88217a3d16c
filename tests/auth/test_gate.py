"""The data path's decision table: which credentials are checked, forwarded or refused."""

from __future__ import annotations

import base64
import dataclasses
from typing import cast

import pytest

from apitokenproxy.auth.credentials import TokenAttempt
from apitokenproxy.auth.gate import AS_IS, OTHER_SCHEME, Admission, Gate, admitted, classify
from apitokenproxy.auth.grant import Grant, grant_for
from apitokenproxy.auth.networks import AllowedNetworks
from apitokenproxy.auth.tokens import format_token
from apitokenproxy.auth.verifier import TokenVerifier
from apitokenproxy.errors import ProxyError, ScopeRefused, Unauthorized

from .test_grant import token
from .test_networks import allowed

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
        ([basic("alice", "atpx_notreally")], True, TokenAttempt("atpx_notreally", "alice")),
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
        # The prefix beside other characters: neither a token nor a password to forward.
        ([basic("alice", "atpx_not-really")], True, "alone", "malformed"),
        ([basic("alice", f'"{TOKEN}"')], True, "alone", "malformed"),
        ([basic(TOKEN, TOKEN)], True, "alone", "malformed"),
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


class CachedOnly:
    """A verifier whose cache holds one grant: what ``Gate.admit_now`` may answer alone."""

    def __init__(self, grant: Grant) -> None:
        self.grant = grant
        self.asked: list[bytes] = []  # the cache keys verify_cached was given

    def digest(self, token: str) -> bytes:
        return b"key of " + token[-4:].encode()

    def verify_cached(
        self, token: str, username: str | None, client: str, digest: bytes = b""
    ) -> Grant | None:
        self.asked.append(digest)
        return self.grant


@pytest.mark.parametrize(
    ("scope", "networks", "method", "client", "admitted"),
    [
        ("write", (), "POST", "198.51.100.7", True),
        ("write", ("10.0.0.0/8",), "POST", "10.1.2.3", True),
        # Outside its networks: left to admit(), which refuses at a bad token's cost.
        ("write", ("10.0.0.0/8",), "GET", "198.51.100.7", None),
        ("read", ("10.0.0.0/8",), "POST", "198.51.100.7", None),
        ("read", (), "GET", "198.51.100.7", True),
        ("read", (), "POST", "198.51.100.7", ScopeRefused),
        ("read", ("10.0.0.0/8",), "POST", "10.1.2.3", ScopeRefused),
    ],
)  # fmt: skip
def test_admit_now_answers_a_cached_token_unless_its_networks_refuse(
    scope: str,
    networks: tuple[str, ...],
    method: str,
    client: str,
    admitted: bool | type[Exception] | None,
) -> None:
    gate = Gate(
        cast(TokenVerifier, CachedOnly(grant_for(token(scope, networks)))), allow_password=True
    )
    attempt = TokenAttempt(TOKEN, None)
    if isinstance(admitted, type):
        with pytest.raises(admitted):
            gate.admit_now(attempt, method, client)
        return
    admission = gate.admit_now(attempt, method, client)
    if admitted is None:
        assert admission is None
    else:
        assert admission is not None and admission.token and admission.user_name == "alice"


def test_a_token_headers_cache_key_is_made_once_by_decide() -> None:
    verifier = CachedOnly(grant_for(token()))
    gate = Gate(cast(TokenVerifier, verifier), allow_password=True)
    decision = gate.decide([basic("alice", TOKEN)])
    assert decision == TokenAttempt(TOKEN, "alice")
    assert isinstance(decision, TokenAttempt) and decision.digest == verifier.digest(TOKEN)
    for _ in range(2):  # the connection reuses its decision for the same header
        assert gate.admit_now(decision, "GET", "10.1.2.3") is not None
    assert verifier.asked == [verifier.digest(TOKEN)] * 2
    assert gate.decide([basic("alice", "hunter2")]) == Admission(
        None, False, password=True, outcome="password", claimed_user="alice"
    )


def test_a_grants_admission_is_made_once_and_follows_a_new_grant() -> None:
    verifier = CachedOnly(grant_for(token()))
    gate = Gate(cast(TokenVerifier, verifier), allow_password=True)
    attempt = TokenAttempt(TOKEN, None)
    first = gate.admit_now(attempt, "GET", "10.1.2.3")
    assert first is not None and first.user_name == "alice" and first.token_id == 7
    assert gate.admit_now(attempt, "GET", "10.1.2.3") is first
    # A new verification (a renamed owner, a rotation) gives a new grant: a new admission.
    renamed = dataclasses.replace(token(), owner_name="alice.smith", valid_until=None)
    verifier.grant = grant_for(renamed)
    second = gate.admit_now(attempt, "GET", "10.1.2.3")
    assert second is not None and second is not first
    assert second.user_name == "alice.smith" and second.response_headers == ()
    assert second == admitted(verifier.grant)


@pytest.mark.parametrize(
    ("allow_password", "networks", "decision", "refused"),
    [
        (True, (), AS_IS, None),
        (False, (), AS_IS, "password_disabled"),
        (True, ("10.0.0.0/8",), AS_IS, "network"),
        (True, ("127.0.0.0/8",), AS_IS, None),
        # With a token in the header too: the password still rides to the upstream.
        (False, (), TokenAttempt(TOKEN, None), "password_disabled"),
        (True, ("10.0.0.0/8",), TokenAttempt(TOKEN, None), "network"),
    ],
)
def test_a_password_in_the_query_is_held_to_the_password_rules(
    allow_password: bool,
    networks: tuple[str, ...],
    decision: TokenAttempt | Admission,
    refused: str | None,
) -> None:
    gate = Gate(
        cast(TokenVerifier, CachedOnly(grant_for(token()))),
        allow_password=allow_password,
        networks=AllowedNetworks(allowed(networks)),
    )
    target = "/rest/api/2/issue/X-1?os_username=alice&os_password=pw"
    # Spelt with escapes, as Tomcat decodes parameter names: the same login.
    escaped = "/rest/api/2/issue/X-1?os_username=alice&%6Fs%5Fpassword=pw"
    if refused is None:
        assert gate.admit_now(decision, "GET", "127.0.0.1", target=target) is not None
        assert gate.admit_now(decision, "GET", "127.0.0.1", target=escaped) is not None
        return
    for spelling in (target, escaped):
        with pytest.raises(ProxyError) as info:
            gate.admit_now(decision, "GET", "127.0.0.1", target=spelling)
        assert info.value.reason == refused
    if decision is AS_IS:  # the same anonymous request without the password goes through
        assert gate.admit_now(decision, "GET", "127.0.0.1", target=target.partition("?")[0])


@pytest.mark.parametrize(
    ("allow_password", "networks", "judges"),
    [(True, (), False), (False, (), True), (True, ("10.0.0.0/8",), True)],
)
def test_the_query_matters_where_the_password_rules_can_refuse(
    allow_password: bool, networks: tuple[str, ...], judges: bool
) -> None:
    gate = Gate(
        cast(TokenVerifier, CachedOnly(grant_for(token()))),
        allow_password=allow_password,
        networks=AllowedNetworks(allowed(networks)),
    )
    assert gate.judges_query is judges
