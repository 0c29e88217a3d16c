"""The shapes of tokens and audit events, as the API and the command line print them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from apitokenproxy.store import TokenRecord
from apitokenproxy.store.audit import AuditEvent
from apitokenproxy.tokenapi.shapes import audit_entry, audit_line, filtered, listed

RECORD = TokenRecord(7, "K", "alice", "CI", "h", 1, None, 5, "K", last_accessed_from="192.0.2.1")
EVENT = AuditEvent(
    id=3,
    at=1_764_000_000_000,  # 2025-11-24 16:00:00 UTC
    kind="revoked",
    actor_key="admin",
    actor_name="admin",
    how="password",
    owner_key="K",
    token_id=7,
    description="CI",
    client="10.1.2.3",
    request_id="req-9",
)


def test_the_address_is_only_there_when_asked_for() -> None:
    assert "lastAccessedFrom" not in listed(RECORD)
    assert "lastAccessedFrom" not in filtered(RECORD)
    assert listed(RECORD, origin=True)["lastAccessedFrom"] == "192.0.2.1"
    unused = TokenRecord(8, "K", "alice", "CI", "h", 1, None, 0, "K")
    assert filtered(unused, origin=True)["lastAccessedFrom"] is None


def test_an_event_as_json() -> None:
    assert audit_entry(EVENT) == {
        "actorAuthentication": "password",
        "actorUserKey": "admin",
        "actorUserName": "admin",
        "at": 1_764_000_000_000,
        "clientAddress": "10.1.2.3",
        "description": "CI",
        "event": "revoked",
        "id": 3,
        "requestId": "req-9",
        "tokenForUserKey": "K",
        "tokenId": 7,
    }


@pytest.mark.parametrize(
    ("changes", "line"),
    [
        ({}, "2025-11-24 16:00:00 UTC  revoked token 7 'CI' of K by admin (admin, password)"
             " from 10.1.2.3 request req-9"),
        ({"client": "", "request_id": "", "how": "cli", "actor_key": "apitokenproxy-cli"},
         "2025-11-24 16:00:00 UTC  revoked token 7 'CI' of K by admin (apitokenproxy-cli, cli)"),
        ({"token_id": None, "description": "", "client": "", "request_id": ""},
         "2025-11-24 16:00:00 UTC  revoked of K by admin (admin, password)"),
        # A description cannot forge a second line or an unquoted field.
        ({"description": "x\nfake", "client": "", "request_id": ""},
         "2025-11-24 16:00:00 UTC  revoked token 7 'x\\nfake' of K by admin (admin, password)"),
        ({"actor_name": "eve\n2026-01-01 by root", "owner_key": "a b", "client": "", "request_id": ""},
         "2025-11-24 16:00:00 UTC  revoked token 7 'CI' of 'a b'"
         " by 'eve\\n2026-01-01 by root' (admin, password)"),
    ],
)  # fmt: skip
def test_an_event_as_a_line(changes: dict[str, object], line: str) -> None:
    assert audit_line(replace(EVENT, **changes)) == line  # type: ignore[arg-type]
