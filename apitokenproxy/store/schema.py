"""What both stores share: the tables, their migrations, and every statement on them.

Statements are written once, with numbered ``$n`` placeholders, and bound to
a ``Dialect`` by ``statements()``; the dialect holds the few places where
SQLite and PostgreSQL spell a thing differently. The token columns come from
``TokenRecord``, so adding a column is one field in ``base.py`` plus one
migration here.

Migrations are history: each entry moves the schema from version i to i+1,
and databases record how many they have applied, so a released entry is
never edited, reordered or renumbered. ``migrate`` runs them; each backend
supplies only how it reads and records its version, inside the transaction
(and, for PostgreSQL, the lock) it migrates under.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import StoreUnavailable
from .audit import Action, AuditEvent, AuditQuery, EventKind, event
from .base import NewToken, TokenRecord, Use, WarningKey

# Revocation rows only need to outlive the slowest poller by a wide margin.
REVOCATION_RETENTION_MS = 3_600_000
# Failure windows are short; day-old rows are of no use to anyone.
FAILURE_RETENTION_MS = 86_400_000

COLUMNS = tuple(f.name for f in dataclasses.fields(TokenRecord))
# What a new token supplies; the other columns take their defaults (id, last_accessed 0).
NEW_COLUMNS = tuple(f.name for f in dataclasses.fields(NewToken))
EVENT_COLUMNS = tuple(f.name for f in dataclasses.fields(AuditEvent))

Migrations = tuple[tuple[str, ...], ...]


def record(row: Iterable[Any]) -> TokenRecord:
    """The record in a row selected as ``COLUMNS``, in that order."""
    fields = dict(zip(COLUMNS, row, strict=True))
    fields["allowed_networks"] = decode_networks(fields["allowed_networks"])
    return TokenRecord(**fields)


def values(token: TokenRecord | NewToken) -> tuple[Any, ...]:
    """The token's fields in column order: ``COLUMNS`` or ``NEW_COLUMNS``."""
    return tuple(
        encode_networks(token.allowed_networks) if f.name == "allowed_networks"
        else getattr(token, f.name)
        for f in dataclasses.fields(token)
    )  # fmt: skip


def encode_networks(networks: tuple[str, ...]) -> str:
    """The ``allowed_networks`` column: canonical CIDRs separated by spaces, "" for none."""
    return " ".join(networks)


def decode_networks(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def audit_event(row: Iterable[Any]) -> AuditEvent:
    """The event in a row selected as ``EVENT_COLUMNS``, in that order."""
    return AuditEvent(**dict(zip(EVENT_COLUMNS, row, strict=True)))


def event_values(stored: AuditEvent) -> tuple[Any, ...]:
    """What ``record_event`` inserts: every column but the id."""
    return tuple(getattr(stored, name) for name in EVENT_COLUMNS if name != "id")


def token_event(kind: EventKind, action: Action, record: TokenRecord) -> AuditEvent:
    """The event of ``action`` on a token whose record the statement returned."""
    return event(
        kind, action, owner_key=record.owner_key, token_id=record.id, description=record.description
    )


def policy_events(
    description: str | None, scope: str | None, allowed_networks: tuple[str, ...] | None
) -> tuple[EventKind, ...]:
    """The events of an ``update_policy``: one for each kind of thing it was given."""
    kinds: tuple[EventKind, ...] = () if description is None else (EventKind.RENAMED,)
    if scope is not None or allowed_networks is not None:
        kinds += (EventKind.POLICY_CHANGED,)
    return kinds


def deleted_event(kind: EventKind, action: Action, row: Iterable[Any]) -> AuditEvent:
    """The event of a deletion, from a row of a ``delete_*`` statement."""
    token_id, owner_key, description = row
    return event(
        kind, action, owner_key=str(owner_key), token_id=int(token_id), description=str(description)
    )


@dataclass(frozen=True)
class Dialect:
    """How one database spells what the shared statements need.

    Every fragment may use ``$n`` placeholders; ``placeholder`` replaces the
    ``$`` (SQLite's ``?n`` is numbered and reusable just like PostgreSQL's ``$n``).
    """

    placeholder: str
    # A 64-bit integer column (times in milliseconds, ids).
    integer: str
    # The tokens' primary key: grows, and is never reused after a deletion.
    identity_key: str
    # The revocations' primary key, which pollers read as a position.
    serial_key: str
    # The larger of two values.
    greatest: str
    # The database's clock in milliseconds since the epoch.
    now_ms: str
    # A relation (id, at, addr) made from ``access_args``: one statement per batch.
    access_batch: str
    access_args: Callable[[Mapping[int, Use]], tuple[Any, ...]]


SQLITE = Dialect(
    placeholder="?",
    integer="INTEGER",
    identity_key="INTEGER PRIMARY KEY AUTOINCREMENT",
    serial_key="INTEGER PRIMARY KEY AUTOINCREMENT",
    greatest="max",
    now_ms="CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
    access_batch=(
        "(SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS at,"
        " json_extract(value, '$[2]') AS addr FROM json_each($1)) AS batch"
    ),
    access_args=lambda uses: (json.dumps([(i, at, addr) for i, (at, addr) in uses.items()]),),
)

POSTGRES = Dialect(
    placeholder="$",
    integer="BIGINT",
    identity_key="BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    serial_key="BIGSERIAL PRIMARY KEY",
    greatest="GREATEST",
    now_ms="(extract(epoch FROM clock_timestamp()) * 1000)::bigint",
    access_batch="unnest($1::bigint[], $2::bigint[], $3::text[]) AS batch(id, at, addr)",
    access_args=lambda uses: (
        list(uses.keys()),
        [at for at, _ in uses.values()],
        [addr for _, addr in uses.values()],
    ),
)


def migrations(d: Dialect) -> Migrations:
    """The schema's history in one dialect; see the module docstring."""
    return tuple(
        tuple(_bind(d, statement) for statement in step)
        for step in (
            (  # 1: tokens, and the revocations other processes learn deletions from
                f"""CREATE TABLE tokens (
                    id {d.identity_key},
                    owner_key TEXT NOT NULL,
                    owner_name TEXT NOT NULL,
                    description TEXT NOT NULL,
                    secret_hash TEXT NOT NULL,
                    created {d.integer} NOT NULL,
                    valid_until {d.integer},
                    last_accessed {d.integer} NOT NULL DEFAULT 0,
                    created_by_key TEXT NOT NULL
                )""",
                "CREATE INDEX tokens_owner ON tokens (owner_key, id)",
                # Never-expiring tokens sort last: (valid_until IS NULL, valid_until, id).
                "CREATE INDEX tokens_expiry ON tokens ((valid_until IS NULL), valid_until, id)",
                f"""CREATE TABLE revocations (
                    seq {d.serial_key},
                    token_id {d.integer} NOT NULL,
                    at {d.integer} NOT NULL
                )""",
            ),
            (  # 2: failed attempts, counted across every process on the store
                f"""CREATE TABLE failures (
                    key TEXT PRIMARY KEY,
                    window_start {d.integer} NOT NULL,
                    count INTEGER NOT NULL
                )""",
            ),
            (  # 3: per-token policy: scope, allowed networks, the secret a rotation replaced
                "ALTER TABLE tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'write'",
                "ALTER TABLE tokens ADD COLUMN allowed_networks TEXT NOT NULL DEFAULT ''",
                "ALTER TABLE tokens ADD COLUMN previous_hash TEXT",
                f"ALTER TABLE tokens ADD COLUMN previous_until {d.integer}",
            ),
            (  # 4: expiry warnings, each claimed by one process and sent once
                f"""CREATE TABLE expiry_warnings (
                    token_id {d.integer} NOT NULL,
                    days INTEGER NOT NULL,
                    valid_until {d.integer} NOT NULL,
                    channel TEXT NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    next_attempt {d.integer} NOT NULL,
                    sent_at {d.integer},
                    PRIMARY KEY (token_id, days, valid_until, channel)
                )""",
                "CREATE INDEX tokens_valid_until ON tokens (valid_until)",
            ),
            (  # 5: the audit trail, and where each token was last used from
                "ALTER TABLE tokens ADD COLUMN last_accessed_from TEXT NOT NULL DEFAULT ''",
                f"""CREATE TABLE audit_events (
                    id {d.serial_key},
                    at {d.integer} NOT NULL,
                    kind TEXT NOT NULL,
                    actor_key TEXT NOT NULL,
                    actor_name TEXT NOT NULL,
                    how TEXT NOT NULL,
                    owner_key TEXT NOT NULL,
                    token_id {d.integer},
                    description TEXT NOT NULL,
                    client TEXT NOT NULL,
                    request_id TEXT NOT NULL
                )""",
                "CREATE INDEX audit_events_at ON audit_events (at, id)",
                "CREATE INDEX audit_events_actor ON audit_events (actor_key, id)",
                "CREATE INDEX audit_events_owner ON audit_events (owner_key, id)",
            ),
        )
    )


async def migrate(
    steps: Migrations,
    version: int,
    *,
    execute: Callable[[str], Awaitable[object]],
    record_version: Callable[[int], Awaitable[object]],
) -> int:
    """Apply the steps after ``version``, recording each; return the version now in force.

    The caller reads ``version`` and calls this inside one transaction, so a
    failed step leaves the schema as it was. Raises StoreUnavailable for a
    database migrated by a newer apitokenproxy.
    """
    if version > len(steps):
        raise StoreUnavailable(
            f"the token database has schema version {version}, newer than this "
            f"apitokenproxy knows ({len(steps)}); upgrade apitokenproxy"
        )
    for number, statements in enumerate(steps[version:], start=version + 1):
        for statement in statements:
            await execute(statement)
        await record_version(number)
    return len(steps)


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
            _bind(self.dialect, f"SELECT count(*) FROM tokens{condition}"),
            _bind(
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
            _bind(self.dialect, f"SELECT count(*) FROM audit_events{where}"),
            _bind(
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


def statements(d: Dialect) -> Statements:
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
        return _bind(d, text)

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


def _bind(d: Dialect, text: str) -> str:
    # Only "$" before a digit is a placeholder: JSON paths such as '$[0]' stay.
    return re.sub(r"\$(?=\d)", lambda _: d.placeholder, text)
