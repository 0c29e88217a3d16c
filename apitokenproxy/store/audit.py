"""The audit trail's records: what changed a token, who did it, how and from where.

Every change to a token is written by the store in the same transaction as
the change itself, from an ``Action`` the caller hands in (who, how, when,
from where) and what the store knows of the token (its id, owner and
description, which outlive a deletion here). Token *use* is not audited: it
is counted in ``lastAccessed`` and ``lastAccessedFrom``.

The kinds and the ways of authenticating are string enums: a new one is one
member here (the column is text), and readers see its value verbatim.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class EventKind(StrEnum):
    """What happened to a token."""

    CREATED = "created"
    RENAMED = "renamed"
    REVOKED = "revoked"
    # One event per token deleted by a "delete all tokens of this user".
    REVOKED_ALL = "revoked-all"
    # A new secret for the same token (the old one may stay good for a grace).
    ROTATED = "rotated"
    # The token's scope or allowed addresses changed.
    POLICY_CHANGED = "policy_changed"


class How(StrEnum):
    """How the actor proved who they are (names of ways, never secrets)."""

    PASSWORD = "password"  # noqa: S105
    SESSION = "session"
    TOKEN = "token"  # noqa: S105
    # An operator at the command line, working on the store directly.
    CLI = "cli"


@dataclass(frozen=True)
class Action:
    """Who is changing tokens, how they authenticated, when, and from where.

    ``client`` is the address as ``proxy/client.py`` decides it; ``request_id``
    the request's sane ``X-Request-Id``. Either is empty when there is none
    (the command line has neither).
    """

    at: int  # milliseconds since the epoch
    actor_key: str
    actor_name: str
    how: How
    client: str = ""
    request_id: str = ""


@dataclass(frozen=True)
class AuditEvent:
    """One stored event; ``token_id`` None only for kinds that name no token."""

    id: int
    at: int
    kind: str  # an EventKind value; kept as text so newer kinds read back unchanged
    actor_key: str
    actor_name: str
    how: str  # a How value, as text for the same reason
    owner_key: str
    token_id: int | None
    description: str
    client: str
    request_id: str


@dataclass(frozen=True)
class AuditQuery:
    """Which events to read: those a user acted in or was the owner in, since a time."""

    user_key: str | None = None
    since: int | None = None  # milliseconds since the epoch, inclusive


@dataclass(frozen=True)
class AuditPage:
    """Events newest first, and how many match in all."""

    items: Sequence[AuditEvent]
    total: int


def event(
    kind: EventKind, action: Action, *, owner_key: str, token_id: int | None, description: str
) -> AuditEvent:
    """The event ``action`` makes of one token; the store assigns its id (0 here)."""
    return AuditEvent(
        id=0,
        at=action.at,
        kind=kind.value,
        actor_key=action.actor_key,
        actor_name=action.actor_name,
        how=action.how.value,
        owner_key=owner_key,
        token_id=token_id,
        description=description,
        client=action.client,
        request_id=action.request_id,
    )
