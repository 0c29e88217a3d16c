"""The per-token rules as tables: scope, allowed networks, the secret's deadline and header."""

from __future__ import annotations

import pytest

from apitokenproxy.auth.grant import EXPIRY_HEADER, enforce, expiry_value, grant_for
from apitokenproxy.errors import NotFromHere, ScopeRefused
from apitokenproxy.networks import inside
from apitokenproxy.store import TokenRecord

from ..conftest import START_MS


def token(
    scope: str = "write",
    networks: tuple[str, ...] = (),
    valid_until: int | None = START_MS + 10_000,
    previous_until: int | None = None,
) -> TokenRecord:
    return TokenRecord(
        7, "key", "alice", "d", "h", START_MS, valid_until, 0, "key",
        scope=scope, allowed_networks=networks,
        previous_hash=None if previous_until is None else "old", previous_until=previous_until,
    )  # fmt: skip


METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE", "PROPFIND", "TRACE", "get")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("upgrade", [False, True])
@pytest.mark.parametrize("scope", ["read", "write"])
def test_scope(method: str, upgrade: bool, scope: str) -> None:
    grant = grant_for(token(scope))
    allowed = scope == "write" or (method in ("GET", "HEAD", "OPTIONS") and not upgrade)
    if allowed:
        enforce(grant, method, "192.0.2.1", upgrade=upgrade)
    else:
        with pytest.raises(ScopeRefused, match="read scope") as info:
            enforce(grant, method, "192.0.2.1", upgrade=upgrade)
        assert info.value.status == 403


@pytest.mark.parametrize(
    ("networks", "client", "allowed"),
    [
        ((), "203.0.113.9", True),
        (("10.0.0.0/8",), "10.255.0.1", True),
        (("10.0.0.0/8",), "11.0.0.1", False),
        (("10.0.0.0/8", "2001:db8::/32"), "2001:db8:1::1", True),
        (("2001:db8::/32",), "2001:db9::1", False),
        (("2001:db8::/32",), "10.0.0.1", False),
        (("10.0.0.0/8",), "::ffff:10.1.2.3", True),
        (("10.0.0.0/8",), "unknown", False),
        (("::/0", "0.0.0.0/0"), "unknown", False),
    ],
)
def test_allowed_networks(networks: tuple[str, ...], client: str, allowed: bool) -> None:
    for scope in ("read", "write"):
        grant = grant_for(token(scope, networks))
        if allowed:
            enforce(grant, "GET", client)
        else:
            with pytest.raises(NotFromHere) as info:
                enforce(grant, "GET", client)
            # The same answer as a bad token; the reason is only for the log.
            assert (info.value.status, info.value.code, info.value.reason) == (
                401, "invalid_token", "network"
            )  # fmt: skip
            assert "WWW-Authenticate" in info.value.headers


def test_a_network_refusal_is_logged_with_its_reason(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="apitokenproxy.auth.grant")
    with pytest.raises(NotFromHere):
        enforce(grant_for(token(networks=("10.0.0.0/8",))), "GET", "198.51.100.7")
    assert caplog.messages == ["token 7 refused from 198.51.100.7: reason=network"]


def test_networks_are_checked_before_the_scope() -> None:
    # From elsewhere, a read token's POST must not reveal that the token is good.
    with pytest.raises(NotFromHere):
        enforce(grant_for(token("read", ("10.0.0.0/8",))), "POST", "192.0.2.1")


def test_inside_ignores_what_is_not_an_address() -> None:
    assert not inside("", (grant_for(token(networks=("0.0.0.0/0",))).networks))


@pytest.mark.parametrize(
    ("valid_until", "previous_until", "rotated", "deadline"),
    [
        (START_MS + 10_000, None, False, START_MS + 10_000),
        (None, None, False, None),
        (START_MS + 10_000, START_MS + 5_000, False, START_MS + 10_000),  # the new secret
        (START_MS + 10_000, START_MS + 5_000, True, START_MS + 5_000),  # the replaced one
        (START_MS + 3_000, START_MS + 5_000, True, START_MS + 3_000),  # never past the token
        (None, START_MS + 5_000, True, START_MS + 5_000),
    ],
)
def test_the_secrets_deadline_and_its_header(
    valid_until: int | None, previous_until: int | None, rotated: bool, deadline: int | None
) -> None:
    grant = grant_for(
        token(valid_until=valid_until, previous_until=previous_until), rotated=rotated
    )
    assert grant.valid_until == deadline
    if deadline is None:
        assert grant.response_headers == ()
    else:
        assert grant.response_headers == ((EXPIRY_HEADER, expiry_value(deadline)),)


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (START_MS, "2026-01-15 12:00:00 UTC"),
        (START_MS + 999, "2026-01-15 12:00:00 UTC"),
        (0, "1970-01-01 00:00:00 UTC"),
    ],
)
def test_expiry_value_is_githubs_format(ms: int, text: str) -> None:
    assert expiry_value(ms) == text


def test_an_unrestricted_grant_needs_no_checks() -> None:
    assert not grant_for(token()).restricted
    assert grant_for(token("read")).restricted
    assert grant_for(token(networks=("10.0.0.0/8",))).restricted
