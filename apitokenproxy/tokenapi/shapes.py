"""The JSON shapes of a token, field for field the seed's: in lists, and in filtered pages.

The command line prints the same shapes, so scripts read one format.
"""

from __future__ import annotations

from typing import Any

from ..store import TokenRecord


def listed(record: TokenRecord) -> dict[str, Any]:
    return {
        "created": record.created,
        "description": record.description,
        "id": record.id,
        "lastAccessed": record.last_accessed,
        "validUntil": record.valid_until,
    }


def filtered(record: TokenRecord) -> dict[str, Any]:
    return {
        **listed(record),
        "tokenCreatedByUserKey": record.created_by_key,
        "tokenForUserKey": record.owner_key,
    }
