"""The records a store keeps and the interface every backend implements."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from .audit import Action, AuditEvent, AuditPage, AuditQuery

# How often a polling store looks for revocations made by other processes.
REVOCATION_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class NewToken:
    """A token about to be stored; ``secret_hash`` is argon2id, never the secret."""

    owner_key: str
    owner_name: str
    description: str
    secret_hash: str
    created: int
    valid_until: int | None
    created_by_key: str
    scope: str = "write"
    allowed_networks: tuple[str, ...] = ()


# Scopes, narrowest first: a token's scope may move left, never right.
SCOPES = ("read", "write")


@dataclass(frozen=True)
class TokenRecord:
    """A stored token. Times are milliseconds since the epoch, as in the seed API.

    ``valid_until`` None means the token never expires; ``last_accessed`` 0
    means it was never used, and ``last_accessed_from`` is then empty: the
    client address of that last use. ``scope`` is one of ``SCOPES``;
    ``allowed_networks`` are canonical CIDR strings, empty for anywhere. After
    a rotation, ``previous_hash`` is the replaced secret's hash, still good
    until ``previous_until`` (both None when there is none).
    """

    id: int
    owner_key: str
    owner_name: str
    description: str
    secret_hash: str
    created: int
    valid_until: int | None
    last_accessed: int
    created_by_key: str
    last_accessed_from: str = ""
    scope: str = "write"
    allowed_networks: tuple[str, ...] = ()
    previous_hash: str | None = None
    previous_until: int | None = None


@dataclass(frozen=True)
class WarningKey:
    """One expiry warning: sent at most once, whichever process or instance sends it.

    ``valid_until`` is part of the key, so a token whose expiry moves is
    warned about its new expiry afresh.
    """

    token_id: int
    days: int
    valid_until: int
    channel: str  # "email" or "webhook"


# One token's latest use: (milliseconds since the epoch, client address).
Use = tuple[int, str]


@dataclass(frozen=True)
class Page:
    items: Sequence[TokenRecord]
    total: int


class TokenStore(Protocol):
    """Persistence for tokens. Each method is one transaction; none is half-applied.

    Every method that changes a token takes the ``Action`` behind it and
    writes its audit event (``audit.py``) in the same transaction.
    """

    async def create(self, token: NewToken, action: Action, *, limit: int = 0) -> TokenRecord:
        """Store a new token; with ``limit`` > 0, raise OwnerAtLimit instead if its owner
        already holds that many. Counting and inserting are one step for every
        process and instance on the store, so concurrent creations cannot pass the limit."""
        ...

    async def get(self, token_id: int) -> TokenRecord | None: ...

    async def list_owned(self, owner_key: str) -> Sequence[TokenRecord]:
        """The owner's tokens, oldest first."""
        ...

    async def update_description(
        self, token_id: int, description: str, action: Action
    ) -> TokenRecord | None:
        """The updated record, or None if there is no such token (and no event)."""
        ...

    async def update_policy(
        self,
        token_id: int,
        action: Action,
        *,
        description: str | None = None,
        scope: str | None = None,
        allowed_networks: tuple[str, ...] | None = None,
    ) -> TokenRecord | None:
        """Change what is given (None: keep) in one transaction; the updated record,
        or None if there is no such token (and no event). Announced through
        ``watch``, so other processes stop trusting the old policy. A changed
        description is a "renamed" event, a changed scope or address list a
        "policy_changed" one."""
        ...

    async def rotate(
        self, token_id: int, secret_hash: str, previous_until: int | None, action: Action
    ) -> TokenRecord | None:
        """Give the token a new secret; the current one stays good until
        ``previous_until`` (None: not at all), replacing any earlier previous
        secret. Announced through ``watch``, audited as "rotated". None if
        there is no such token (and no event)."""
        ...

    async def delete(self, token_id: int, action: Action) -> bool:
        """True if a token was deleted. Deletions are announced through ``watch``."""
        ...

    async def delete_all_for(self, owner_key: str, action: Action) -> Sequence[int]:
        """Delete every token of one owner; return their ids (one event each)."""
        ...

    async def find_by_expiry(
        self,
        not_valid_after: int | None,
        offset: int,
        limit: int,
        *,
        owner_key: str | None = None,
        description: str | None = None,
    ) -> Page:
        """Tokens with ``valid_until <= not_valid_after`` (None: all tokens),
        ordered by valid_until (never-expiring last), then id. ``owner_key``
        keeps one user's tokens; ``description`` keeps those whose description
        contains it, ignoring case."""
        ...

    async def expiring(self, after: int, not_after: int) -> Sequence[TokenRecord]:
        """Tokens with ``after < valid_until <= not_after``, soonest first."""
        ...

    async def claim_warning(
        self, key: WarningKey, now_ms: int, lease_ms: int, max_attempts: int
    ) -> int | None:
        """Take the right to send one warning; return its failed attempts so far, or None.

        None: it was sent, another process holds it (until ``now_ms + lease_ms``)
        or waits to retry it, or it failed ``max_attempts`` times. Atomic across
        every process on the store.
        """
        ...

    async def warning_sent(self, key: WarningKey, now_ms: int) -> None: ...

    async def warning_failed(self, key: WarningKey, retry_at: int) -> int:
        """Count a failed attempt, not to be claimed again before ``retry_at``;
        return the attempts failed so far."""
        ...

    async def prune_warnings(self, before: int) -> None:
        """Forget warnings for tokens that expired before ``before``."""
        ...

    async def record_access(self, uses: Mapping[int, Use]) -> None:
        """Set last_accessed and last_accessed_from for many tokens at once, never
        moving a time backwards (an older use leaves the address as it is)."""
        ...

    async def audit_events(self, query: AuditQuery, offset: int, limit: int) -> AuditPage:
        """Events matching ``query``, newest first, and how many match in all."""
        ...

    async def copy_events(self, events: Sequence[AuditEvent]) -> int:
        """Insert events with their ids (``copy-store``); one already there is left alone."""
        ...

    async def prune_audit(self, before: int, limit: int) -> int:
        """Delete at most ``limit`` of the oldest events older than ``before`` (ms);
        return how many were deleted. Callers repeat it: no giant DELETE."""
        ...

    async def watch(
        self, revoked: Callable[[Sequence[int]], None], reset: Callable[[], None]
    ) -> None:
        """Report tokens revoked or changed by other processes or instances, until cancelled.

        ``revoked`` gets their ids, within a second, so their verified copies
        are dropped. ``reset`` is called when revocations may have been missed
        (a lost connection), so the caller must forget every verified token.
        """
        ...

    def listener_up(self) -> bool | None:
        """Whether ``watch``'s revocation listener is connected now; None for a store
        that has none and polls instead (the metrics show no listener gauge then)."""
        ...

    async def add_failure(self, key: str, now_ms: int, window_ms: int) -> tuple[int, int]:
        """Count a failed attempt for ``key``; return (window start, failures in it).

        A window older than ``window_ms`` starts afresh. Shared by every
        process on the store, so spreading attempts over instances does not
        multiply an attacker's budget.
        """
        ...

    async def upsert(self, records: Sequence[TokenRecord]) -> int:
        """Insert or overwrite tokens with their ids, hashes and times intact."""
        ...

    async def ping(self) -> None:
        """Raise StoreUnavailable if the store cannot answer a query."""
        ...

    async def close(self) -> None: ...
