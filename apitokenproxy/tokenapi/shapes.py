"""The JSON shapes of a token, field for field the seed's: in lists, and in filtered pages.

The command line prints the same shapes, so scripts read one format. The
policy fields (``scope``, ``allowedAddresses``) are added only for a token
whose policy is not the default (write, from anywhere), so a site that uses
none of them gets exactly the seed's answers. ``current`` (introspection)
always has every policy field.

One more additive field, only when asked for (``?expand=lastAccessedFrom``,
the Atlassian idiom): ``lastAccessedFrom``, the client address of the last
use (null while unused). The audit trail's events have a shape of their own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..auth.grant import Grant
from ..store import TokenRecord
from ..store.audit import AuditEvent


def listed(record: TokenRecord, *, origin: bool = False) -> dict[str, Any]:
    """The seed's shape; with ``origin``, ``lastAccessedFrom`` too."""
    shape = {
        "created": record.created,
        "description": record.description,
        "id": record.id,
        "lastAccessed": record.last_accessed,
        "validUntil": record.valid_until,
    }
    if record.scope != "write" or record.allowed_networks:
        shape.update(policy(record))
    if origin:
        shape["lastAccessedFrom"] = record.last_accessed_from or None
    return shape


def policy(record: TokenRecord) -> dict[str, Any]:
    return {"scope": record.scope, "allowedAddresses": list(record.allowed_networks)}


def rotated(record: TokenRecord) -> dict[str, Any]:
    """A rotation's answer besides the new ``plainTextToken``: when the old secret stops."""
    return {**filtered(record), "previousTokenValidUntil": record.previous_until}


def current(record: TokenRecord, grant: Grant) -> dict[str, Any]:
    """Introspection: the token, its owner, its policy, and when the secret used stops working
    (``validUntil``, or the end of a rotation's grace for the replaced secret)."""
    return {
        **filtered(record),
        **policy(record),
        "tokenForUserName": record.owner_name,
        "secretValidUntil": grant.valid_until,
    }


def filtered(record: TokenRecord, *, origin: bool = False) -> dict[str, Any]:
    return {
        **listed(record, origin=origin),
        "tokenCreatedByUserKey": record.created_by_key,
        "tokenForUserKey": record.owner_key,
    }


def audit_entry(event: AuditEvent) -> dict[str, Any]:
    return {
        "actorAuthentication": event.how,
        "actorUserKey": event.actor_key,
        "actorUserName": event.actor_name,
        "at": event.at,
        "clientAddress": event.client or None,
        "description": event.description,
        "event": event.kind,
        "id": event.id,
        "requestId": event.request_id or None,
        "tokenForUserKey": event.owner_key,
        "tokenId": event.token_id,
    }


def audit_line(event: AuditEvent) -> str:
    """One event as a line of text, for people: when, what, which token, who, how, whence."""
    when = datetime.fromtimestamp(event.at / 1000, tz=UTC)
    token = "" if event.token_id is None else f" token {event.token_id}"
    described = f" {event.description!r}" if event.description else ""
    line = (
        f"{when:%Y-%m-%d %H:%M:%S} UTC  {_plain(event.kind)}{token}{described}"
        f" of {_plain(event.owner_key)} by {_plain(event.actor_name)}"
        f" ({_plain(event.actor_key)}, {_plain(event.how)})"
    )
    if event.client:
        line += f" from {_plain(event.client)}"
    if event.request_id:
        line += f" request {_plain(event.request_id)}"
    return line


def _plain(text: str) -> str:
    # Names come from the upstream or the command line: one that could break
    # the line or hide in it is shown quoted and escaped.
    return text if text.isprintable() and " " not in text else repr(text)
