"""changes.py's pure part: which audit events a change to a token makes."""

from __future__ import annotations

import dataclasses

import pytest

from apitokenproxy.store import TokenRecord
from apitokenproxy.store.audit import Action, EventKind, How
from apitokenproxy.store.changes import deleted_event, policy_events, token_event

RECORD = TokenRecord(7, "k", "n", "d", "$argon2id$x", 1, None, 5, "c")
ACTION = Action(at=9, actor_key="a", actor_name="n", how=How.CLI, client="c", request_id="r")


def test_a_token_event_names_the_record_and_the_actor() -> None:
    made = token_event(EventKind.RENAMED, ACTION, RECORD)
    assert (made.id, made.at, made.kind, made.how) == (0, 9, "renamed", "cli")
    assert (made.actor_key, made.actor_name, made.client, made.request_id) == ("a", "n", "c", "r")
    assert (made.owner_key, made.token_id, made.description) == ("k", 7, "d")


def test_a_deletion_event_reads_the_deleted_row() -> None:
    deleted = deleted_event(EventKind.REVOKED, ACTION, (7, "k", "d"))
    assert deleted == dataclasses.replace(
        token_event(EventKind.RENAMED, ACTION, RECORD), kind="revoked"
    )


@pytest.mark.parametrize(
    ("description", "scope", "networks", "kinds"),
    [
        (None, None, None, ()),
        ("new", None, None, (EventKind.RENAMED,)),
        (None, "read", None, (EventKind.POLICY_CHANGED,)),
        (None, None, (), (EventKind.POLICY_CHANGED,)),
        (None, "read", ("10.0.0.0/8",), (EventKind.POLICY_CHANGED,)),
        ("new", "read", (), (EventKind.RENAMED, EventKind.POLICY_CHANGED)),
    ],
)
def test_a_policy_update_makes_one_event_per_kind_of_change(
    description: str | None,
    scope: str | None,
    networks: tuple[str, ...] | None,
    kinds: tuple[EventKind, ...],
) -> None:
    assert policy_events(description, scope, networks) == kinds
