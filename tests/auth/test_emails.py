"""Owners' e-mail addresses: asked of the upstream once, remembered for a while."""

from __future__ import annotations

import pytest

from apitokenproxy.auth.emails import OwnerEmails, could_be_email
from apitokenproxy.store import TokenRecord

ALICE = TokenRecord(1, "key-alice", "alice", "d", "h", 0, None, 0, "key-alice")


@pytest.mark.parametrize(
    ("username", "expected"),
    [(None, False), ("alice", False), ("ALICE", False), ("alice@example.com", True),
     ("@", True), ("bob", False)],
)  # fmt: skip
def test_could_be_email(username: str | None, expected: bool) -> None:
    assert could_be_email(username, "alice") is expected


def test_a_user_named_like_an_address_is_matched_by_name() -> None:
    assert not could_be_email("Ops@Example.com", "ops@example.com")


async def test_addresses_are_asked_once_and_casefolded() -> None:
    asked: list[str] = []

    async def lookup(record: TokenRecord) -> str | None:
        asked.append(record.owner_key)
        return "Alice@Example.COM"

    emails = OwnerEmails(lookup, ttl_seconds=60, size=10)
    assert emails.known("key-alice") is None
    assert await emails.of(ALICE) == "alice@example.com"
    assert await emails.of(ALICE) == "alice@example.com"
    assert emails.known("key-alice") == "alice@example.com"
    assert asked == ["key-alice"]


async def test_no_address_is_remembered_too() -> None:
    asked: list[str] = []

    async def lookup(record: TokenRecord) -> str | None:
        asked.append(record.owner_key)
        return None

    emails = OwnerEmails(lookup, ttl_seconds=60, size=10)
    assert await emails.of(ALICE) == ""
    assert emails.known("key-alice") == ""
    assert await emails.of(ALICE) == ""
    assert asked == ["key-alice"]
