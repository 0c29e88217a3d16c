"""Every statement both stores run, written once and spelled for each dialect.

``for_dialect`` binds the shared text (``$n`` placeholders) to a ``Dialect``
of ``schema.py``; the rows the statements return are ``schema``'s too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .audit import AuditQuery
from .base import Use, WarningKey
from .schema import COLUMNS, EVENT_COLUMNS, NEW_COLUMNS, Dialect, bind

# Revocation rows only need to outlive the slowest poller by a wide margin.
REVOCATION_RETENTION_MS = 3_600_000
# Failure windows are short; day-old rows are of no use to anyone.
FAILURE_RETENTION_MS = 86_400_000

_SELECTED = ", ".join(COLUMNS)
_BY_EXPIRY = "ORDER BY (valid_until IS NULL), valid_until, id"


@dataclass(frozen=True)
class Statements:
    """Every statement both stores run, bound to one dialect.

    Rows of ``create``, ``get``, ``list_owned``, ``update_*``, ``rotate`` and
    the pages of ``expiring`` are ``COLUMNS``; the ``delete_*`` statements
    return (id, owner_key, description) of each deleted token: the ids to be
    passed one by one to ``record_revocation``, as are the ids that
    ``update_policy`` and ``rotate`` changed; the rest is for the audit event.
    Rows of ``audit``'s pages are ``EVENT_COLUMNS``.
    """

    dialect: Dialect
    create: str  # values(NewToken)
    get: str  # (id,)
    list_owned: str  # (owner_key,)
    update_description: str  # (id, description)
    update_policy: str  # (id, description, scope, allowed_networks), None keeps a column
    rotate: str  # (id, secret_hash, previous_until)
    delete_one: str  # (id,)
    delete_owned: str  # (owner_key,)
    record_revocation: str  # (token_id,)
    prune_revocations: str  # ()
    record_access: str  # access_args(uses)
    record_event: str  # event_values(event)
    copy_event: str  # an AuditEvent's fields, id included; one already there is left alone
    prune_audit: str  # (before_ms, limit) -> ids deleted
    upsert: str  # values(TokenRecord)
    count_failure: str  # (key, now_ms, window_ms) -> (window_start, count)
    prune_failures: str  # (now_ms,)
    count_owned: str  # (owner_key,) -> (count,)
    expiring_between: str  # (after, not_after)
    # warning_args(key) + (now_ms, lease_until, max_attempts) -> (attempts,) if claimed
    claim_warning: str
    warning_sent: str  # warning_args(key) + (now_ms,)
    warning_failed: str  # warning_args(key) + (retry_at,) -> (attempts,)
    prune_warnings: str  # (before,)

    def expiring(
        self,
        not_valid_after: int | None,
        owner_key: str | None = None,
        description: str | None = None,
    ) -> tuple[str, str, tuple[Any, ...]]:
        """Count and page statements for ``find_by_expiry``, and the arguments
        both take; the page statement takes limit and offset after them."""
        conditions: list[str] = []
        args: list[Any] = []
        if not_valid_after is not None:
            args.append(not_valid_after)
            conditions.append(f"valid_until <= ${len(args)}")
        if owner_key is not None:
            args.append(owner_key)
            conditions.append(f"owner_key = ${len(args)}")
        if description is not None:
            args.append(f"%{_like_escaped(description.lower())}%")
            conditions.append(f"lower(description) LIKE ${len(args)} ESCAPE '!'")
        condition = (" WHERE " + " AND ".join(conditions)) if conditions else ""
        n = len(args)
        return (
            bind(self.dialect, f"SELECT count(*) FROM tokens{condition}"),
            bind(
                self.dialect,
                f"SELECT {_SELECTED} FROM tokens{condition} {_BY_EXPIRY}"
                f" LIMIT ${n + 1} OFFSET ${n + 2}",
            ),
            tuple(args),
        )

    def audit(self, query: AuditQuery) -> tuple[str, str, tuple[Any, ...]]:
        """Count and page statements for ``audit_events``, newest first, and the
        arguments both take; the page statement takes limit and offset after them."""
        conditions: list[str] = []
        args: list[Any] = []
        if query.user_key is not None:
            args.append(query.user_key)
            n = len(args)
            conditions.append(f"(actor_key = ${n} OR owner_key = ${n})")
        if query.since is not None:
            args.append(query.since)
            conditions.append(f"at >= ${len(args)}")
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        n = len(args)
        return (
            bind(self.dialect, f"SELECT count(*) FROM audit_events{where}"),
            bind(
                self.dialect,
                f"SELECT {', '.join(EVENT_COLUMNS)} FROM audit_events{where}"
                f" ORDER BY id DESC LIMIT ${n + 1} OFFSET ${n + 2}",
            ),
            tuple(args),
        )

    @staticmethod
    def warning_args(key: WarningKey) -> tuple[Any, ...]:
        """The first arguments of every warning statement."""
        return (key.token_id, key.days, key.valid_until, key.channel)

    def access_args(self, uses: Mapping[int, Use]) -> tuple[Any, ...]:
        """The arguments of ``record_access`` for one batch of uses."""
        return self.dialect.access_args(uses)


def for_dialect(d: Dialect) -> Statements:
    """The shared statements, spelled for ``d``."""
    new = ", ".join(NEW_COLUMNS)
    new_values = ", ".join(f"${i}" for i in range(1, len(NEW_COLUMNS) + 1))
    all_values = ", ".join(f"${i}" for i in range(1, len(COLUMNS) + 1))
    # A copy overwrites everything but the id, and never moves lastAccessed
    # backwards (nor the address of that last use).
    newer_use = "excluded.last_accessed >= tokens.last_accessed"
    overwrite = ", ".join(
        f"{c} = {d.greatest}(tokens.{c}, excluded.{c})"
        if c == "last_accessed"
        else f"{c} = CASE WHEN {newer_use} THEN excluded.{c} ELSE tokens.{c} END"
        if c == "last_accessed_from"
        else f"{c} = excluded.{c}"
        for c in COLUMNS
        if c != "id"
    )
    event_columns = [c for c in EVENT_COLUMNS if c != "id"]

    def b(text: str) -> str:
        return bind(d, text)

    return Statements(
        dialect=d,
        create=b(f"INSERT INTO tokens ({new}) VALUES ({new_values}) RETURNING {_SELECTED}"),
        get=b(f"SELECT {_SELECTED} FROM tokens WHERE id = $1"),
        list_owned=b(f"SELECT {_SELECTED} FROM tokens WHERE owner_key = $1 ORDER BY id"),
        update_description=b(
            f"UPDATE tokens SET description = $2 WHERE id = $1 RETURNING {_SELECTED}"
        ),
        update_policy=b(
            "UPDATE tokens SET description = coalesce($2, description),"
            " scope = coalesce($3, scope), allowed_networks = coalesce($4, allowed_networks)"
            f" WHERE id = $1 RETURNING {_SELECTED}"
        ),
        # The current secret becomes the previous one, unless it is to die at once.
        rotate=b(
            f"UPDATE tokens SET previous_hash = CASE WHEN CAST($3 AS {d.integer}) IS NULL"
            " THEN NULL ELSE secret_hash END, previous_until = $3, secret_hash = $2"
            f" WHERE id = $1 RETURNING {_SELECTED}"
        ),
        delete_one=b("DELETE FROM tokens WHERE id = $1 RETURNING id, owner_key, description"),
        delete_owned=b(
            "DELETE FROM tokens WHERE owner_key = $1 RETURNING id, owner_key, description"
        ),
        record_revocation=b(f"INSERT INTO revocations (token_id, at) VALUES ($1, {d.now_ms})"),
        prune_revocations=b(
            f"DELETE FROM revocations WHERE at < {d.now_ms} - {REVOCATION_RETENTION_MS}"
        ),
        # The later time always wins, also when two processes flush the same
        # token, and brings its address along (SET reads the row as it was).
        record_access=b(
            f"UPDATE tokens SET last_accessed = {d.greatest}(tokens.last_accessed, batch.at),"
            " last_accessed_from = CASE WHEN batch.at >= tokens.last_accessed"
            " THEN batch.addr ELSE tokens.last_accessed_from END"
            f" FROM {d.access_batch} WHERE tokens.id = batch.id"
        ),
        record_event=b(
            f"INSERT INTO audit_events ({', '.join(event_columns)})"
            f" VALUES ({', '.join(f'${i}' for i in range(1, len(event_columns) + 1))})"
        ),
        copy_event=b(
            f"INSERT INTO audit_events ({', '.join(EVENT_COLUMNS)})"
            f" VALUES ({', '.join(f'${i}' for i in range(1, len(EVENT_COLUMNS) + 1))})"
            " ON CONFLICT (id) DO NOTHING"
        ),
        # Oldest first, a bounded batch at a time: never one giant DELETE.
        prune_audit=b(
            "DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events"
            " WHERE at < $1 ORDER BY at, id LIMIT $2) RETURNING id"
        ),
        upsert=b(
            f"INSERT INTO tokens ({_SELECTED}) VALUES ({all_values})"
            f" ON CONFLICT (id) DO UPDATE SET {overwrite}"
        ),
        # A window older than the limit starts afresh at 1.
        count_failure=b("""
            INSERT INTO failures (key, window_start, count) VALUES ($1, $2, 1)
            ON CONFLICT (key) DO UPDATE SET
                count = CASE WHEN failures.window_start <= $2 - $3 THEN 1
                        ELSE failures.count + 1 END,
                window_start = CASE WHEN failures.window_start <= $2 - $3 THEN $2
                               ELSE failures.window_start END
            RETURNING window_start, count
        """),
        prune_failures=b("DELETE FROM failures WHERE window_start < $1"),
        count_owned=b("SELECT count(*) FROM tokens WHERE owner_key = $1"),
        expiring_between=b(
            f"SELECT {_SELECTED} FROM tokens WHERE valid_until > $1 AND valid_until <= $2"
            " ORDER BY valid_until, id"
        ),
        # A new row is claimed at once; an existing one only if unsent, its lease
        # or back-off over, and attempts left. Concurrent claims of one row wait
        # for each other, and the loser finds the winner's lease: no row is sent twice.
        claim_warning=b("""
            INSERT INTO expiry_warnings
                (token_id, days, valid_until, channel, attempts, next_attempt)
            VALUES ($1, $2, $3, $4, 0, $6)
            ON CONFLICT (token_id, days, valid_until, channel) DO UPDATE
                SET next_attempt = excluded.next_attempt
                WHERE expiry_warnings.sent_at IS NULL
                AND expiry_warnings.next_attempt <= $5
                AND expiry_warnings.attempts < $7
            RETURNING attempts
        """),
        warning_sent=b(
            "UPDATE expiry_warnings SET sent_at = $5 WHERE token_id = $1 AND days = $2"
            " AND valid_until = $3 AND channel = $4"
        ),
        warning_failed=b(
            "UPDATE expiry_warnings SET attempts = attempts + 1, next_attempt = $5"
            " WHERE token_id = $1 AND days = $2 AND valid_until = $3 AND channel = $4"
            " RETURNING attempts"
        ),
        prune_warnings=b("DELETE FROM expiry_warnings WHERE valid_until < $1"),
    )


def _like_escaped(text: str) -> str:
    # "!" rather than backslash: the same ESCAPE spelling works in both dialects.
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")
