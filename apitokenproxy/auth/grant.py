"""What a verified token allows: its scope, where it may be used from, until when.

A ``Grant`` is made once when a token is verified and cached with it, so the
per-request work is a few attribute reads: the networks are parsed, the
expiry header is formatted, and a token with neither a narrow scope nor
allowed networks skips the checks altogether. ``enforce`` is the one rule
that both lanes, the forward-auth answer and the token API ask:

- scope ``read``: GET, HEAD and OPTIONS only; any other method, and any
  upgrade (a WebSocket), is 403 with a message that names the scope;
- allowed networks: a use from an address outside them is refused like a
  bad token (401, the same message), with ``reason=network`` in the log;
  the verifier (``not_from_here``) makes it cost what a bad token costs
  (one argon2 verification) and counts it as a failed attempt.

A token used with the secret that a rotation replaced is good until the
grace ends (``valid_until`` is then the earlier of the two deadlines), and
says so in the expiry header.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from ..errors import NotFromHere, ScopeRefused
from ..networks import Networks, inside, parse_networks
from ..store import TokenRecord

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Every token-authenticated answer through the proxy carries this, as GitHub's
# GitHub-Authentication-Token-Expiration (same format); absent for a token
# that never expires.
EXPIRY_HEADER = "X-Apitokenproxy-Token-Expiration"
REFUSED_MESSAGE = "the token is unknown or has been revoked"


@dataclass(frozen=True)
class Grant:
    """A verified token, with what each request needs precomputed."""

    record: TokenRecord
    # When the secret presented stops working: the token's expiry, or the
    # earlier end of a rotation's grace for the replaced secret.
    valid_until: int | None
    rotated: bool  # the secret presented is the one a rotation replaced
    read_only: bool
    # Asked with ``inside``, not ``Networks.holds``: a grant per cached token
    # remembering every address it was tried from would be unbounded in sum.
    networks: Networks
    # Added to every upstream answer to a request made with this token.
    response_headers: tuple[tuple[str, str], ...]
    # Whether enforce() has anything to check: false for most tokens.
    restricted: bool


def grant_for(record: TokenRecord, *, rotated: bool = False) -> Grant:
    """The grant of ``record``, verified with its current secret or (``rotated``)
    with the one its last rotation replaced."""
    valid_until = record.valid_until
    if rotated and record.previous_until is not None:
        valid_until = (
            record.previous_until
            if valid_until is None
            else min(valid_until, record.previous_until)
        )
    read_only = record.scope == "read"
    networks = parse_networks(record.allowed_networks)
    return Grant(
        record=record,
        valid_until=valid_until,
        rotated=rotated,
        read_only=read_only,
        networks=networks,
        response_headers=(
            () if valid_until is None else ((EXPIRY_HEADER, expiry_value(valid_until)),)
        ),
        restricted=read_only or bool(networks),
    )


def expiry_value(ms: int) -> str:
    """GitHub's format: ``2026-07-15 12:00:00 UTC``."""
    return f"{datetime.fromtimestamp(ms / 1000, tz=UTC):%Y-%m-%d %H:%M:%S} UTC"


def enforce(grant: Grant, method: str, client: str, *, upgrade: bool = False) -> None:
    """Raise ScopeRefused or NotFromHere if the token may not make this request."""
    if not grant.restricted:
        return
    refused = not_from_here(grant, client)
    if refused is not None:
        raise refused
    if grant.read_only and (upgrade or method not in SAFE_METHODS):
        what = "a connection upgrade" if upgrade else method
        raise ScopeRefused(
            f"this token has the read scope: it allows only GET, HEAD and OPTIONS, not {what}"
        )


def not_from_here(grant: Grant, client: str) -> NotFromHere | None:
    """The refusal of a use from ``client`` outside the token's allowed networks, if it is."""
    if grant.networks and not inside(client, grant.networks):
        log.info("token %d refused from %s: reason=network", grant.record.id, client)
        return NotFromHere(REFUSED_MESSAGE, reason="network")
    return None
