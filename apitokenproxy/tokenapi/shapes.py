"""The JSON shapes of a token, field for field the seed's: in lists, and in filtered pages.

The command line prints the same shapes, so scripts read one format. The
policy fields (``scope``, ``allowedAddresses``) are added only for a token
whose policy is not the default (write, from anywhere), so a site that uses
none of them gets exactly the seed's answers. ``current`` (introspection)
always has every field.
"""

from __future__ import annotations

from typing import Any

from ..auth.grant import Grant
from ..store import TokenRecord


def listed(record: TokenRecord) -> dict[str, Any]:
    shape = {
        "created": record.created,
        "description": record.description,
        "id": record.id,
        "lastAccessed": record.last_accessed,
        "validUntil": record.valid_until,
    }
    if record.scope != "write" or record.allowed_networks:
        shape.update(policy(record))
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


def filtered(record: TokenRecord) -> dict[str, Any]:
    return {
        **listed(record),
        "tokenCreatedByUserKey": record.created_by_key,
        "tokenForUserKey": record.owner_key,
    }
