"""The embedded store: SQLite through aiosqlite.

One connection per process, in WAL mode (readers never wait for the writer)
with a busy timeout (several worker processes share the file); opening waits
for another process creating or migrating the same file. Every method
runs under one asyncio lock, because statements of concurrent coroutines
would otherwise interleave inside each other's transactions on the shared
connection. Writes use ``BEGIN IMMEDIATE`` so two processes never deadlock
upgrading a read lock, and roll back on any error: nothing is half-written.
``synchronous=FULL`` makes a reported creation or deletion survive a crash or
power loss. The schema version is ``PRAGMA user_version``; other processes
learn of deletions and changes by polling the revocations table.

The statements are ``schema``'s; sqlite3 errors become ``StoreUnavailable`` here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from ..errors import StoreUnavailable
from . import schema
from .audit import Action, AuditEvent, AuditPage, AuditQuery, EventKind
from .base import (
    REVOCATION_POLL_SECONDS,
    NewToken,
    OwnerAtLimit,
    Page,
    TokenRecord,
    Use,
    WarningKey,
)

log = logging.getLogger(__name__)

SQL = schema.statements(schema.SQLITE)
MIGRATIONS = schema.migrations(schema.SQLITE)
# Waits between tries while another process holds a new file's write lock.
RETRY_FIRST_SECONDS = 0.01
RETRY_MAX_SECONDS = 0.25


class SQLiteStore:
    """``TokenStore`` on a SQLite file."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str, busy_timeout_seconds: float = 5.0) -> SQLiteStore:
        if path != ":memory:":
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailable(
                    f"cannot create the folder of the token database {path}: {exc.strerror or exc}"
                ) from exc
        try:
            conn = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open the token database {path}: {exc}") from exc
        store = cls(conn)
        try:
            await store._prepare(path, busy_timeout_seconds)
        except BaseException:
            await conn.close()
            raise
        return store

    async def _prepare(self, path: str, busy_timeout_seconds: float) -> None:
        """Set the connection up and migrate, waiting for another process doing the same.

        Turning a new file to WAL upgrades the pragma's read lock to a write
        lock, and SQLite refuses that upgrade at once, without waiting its
        busy timeout, while another connection holds the write lock (waiting
        could deadlock): so the second of two processes opening a new file
        together failed with "locked". Each busy step is tried again, from the
        start, until ``busy_timeout_seconds`` have passed; every step is
        idempotent and the migration is one transaction.
        """
        deadline = time.monotonic() + busy_timeout_seconds
        delay = RETRY_FIRST_SECONDS
        while True:
            try:
                async with self._translated():
                    await self._conn.execute(
                        f"PRAGMA busy_timeout = {int(busy_timeout_seconds * 1000)}"
                    )
                    await self._conn.execute("PRAGMA journal_mode = WAL")
                    await self._conn.execute("PRAGMA synchronous = FULL")
                await self.migrate()
                return
            except StoreUnavailable as exc:
                if not _busy(exc.__cause__) or time.monotonic() + delay > deadline:
                    raise
            if delay == RETRY_FIRST_SECONDS:
                log.info("the token database %s is being opened by another process; waiting", path)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)

    async def migrate(self) -> int:
        """Apply pending migrations; return the schema version now in force."""
        async with self._write() as conn:
            row = await _first(conn, "PRAGMA user_version")
            return await schema.migrate(
                MIGRATIONS,
                int(row[0]) if row else 0,
                execute=conn.execute,
                record_version=lambda number: conn.execute(f"PRAGMA user_version = {number}"),
            )

    @asynccontextmanager
    async def _translated(self) -> AsyncIterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreUnavailable(_explain(exc)) from exc
        except ValueError as exc:  # aiosqlite after close: "no active connection"
            raise StoreUnavailable(f"the token database is closed: {exc}") from exc

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock, self._translated():
            yield self._conn

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock, self._translated():
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                await _rollback(self._conn)
                raise
            try:
                await self._conn.execute("COMMIT")
            except BaseException:
                await _rollback(self._conn)
                raise

    async def create(self, token: NewToken, action: Action, *, limit: int = 0) -> TokenRecord:
        # BEGIN IMMEDIATE holds the write lock from the count to the insert.
        async with self._write() as conn:
            if limit:
                counted = await _first(conn, SQL.count_owned, (token.owner_key,))
                count = int(counted[0]) if counted else 0
                if count >= limit:
                    raise OwnerAtLimit(count)
            row = await _first(conn, SQL.create, schema.values(token))
            assert row is not None
            record = schema.record(row)
            await conn.execute(
                SQL.record_event,
                schema.event_values(schema.token_event(EventKind.CREATED, action, record)),
            )
        return record

    async def get(self, token_id: int) -> TokenRecord | None:
        async with self._read() as conn:
            row = await _first(conn, SQL.get, (token_id,))
        return None if row is None else schema.record(row)

    async def list_owned(self, owner_key: str) -> Sequence[TokenRecord]:
        async with self._read() as conn:
            rows = await conn.execute_fetchall(SQL.list_owned, (owner_key,))
        return [schema.record(r) for r in rows]

    async def update_description(
        self, token_id: int, description: str, action: Action
    ) -> TokenRecord | None:
        async with self._write() as conn:
            row = await _first(conn, SQL.update_description, (token_id, description))
            if row is None:
                return None
            record = schema.record(row)
            await conn.execute(
                SQL.record_event,
                schema.event_values(schema.token_event(EventKind.RENAMED, action, record)),
            )
        return record

    async def update_policy(
        self,
        token_id: int,
        action: Action,
        *,
        description: str | None = None,
        scope: str | None = None,
        allowed_networks: tuple[str, ...] | None = None,
    ) -> TokenRecord | None:
        networks = None if allowed_networks is None else schema.encode_networks(allowed_networks)
        kinds = schema.policy_events(description, scope, allowed_networks)
        return await self._change(
            SQL.update_policy, (token_id, description, scope, networks), kinds, action
        )

    async def rotate(
        self, token_id: int, secret_hash: str, previous_until: int | None, action: Action
    ) -> TokenRecord | None:
        return await self._change(
            SQL.rotate, (token_id, secret_hash, previous_until), (EventKind.ROTATED,), action
        )

    async def _change(
        self,
        statement: str,
        args: tuple[Any, ...],
        kinds: Sequence[EventKind],
        action: Action,
    ) -> TokenRecord | None:
        """Run an UPDATE ... RETURNING, announce the change like a deletion, and
        write its events, all in one transaction."""
        async with self._write() as conn:
            row = await _first(conn, statement, args)
            if row is None:
                return None
            record = schema.record(row)
            await conn.execute(SQL.record_revocation, (args[0],))
            await conn.executemany(
                SQL.record_event,
                [schema.event_values(schema.token_event(k, action, record)) for k in kinds],
            )
        return record

    async def delete(self, token_id: int, action: Action) -> bool:
        return bool(await self._delete(SQL.delete_one, token_id, EventKind.REVOKED, action))

    async def delete_all_for(self, owner_key: str, action: Action) -> Sequence[int]:
        return await self._delete(SQL.delete_owned, owner_key, EventKind.REVOKED_ALL, action)

    async def _delete(
        self, statement: str, value: object, kind: EventKind, action: Action
    ) -> list[int]:
        async with self._write() as conn:
            rows = list(await conn.execute_fetchall(statement, (value,)))
            ids = [int(r[0]) for r in rows]
            if ids:
                await conn.executemany(SQL.record_revocation, [(i,) for i in ids])
                await conn.execute(SQL.prune_revocations)
                await conn.executemany(
                    SQL.record_event,
                    [schema.event_values(schema.deleted_event(kind, action, r)) for r in rows],
                )
        return ids

    async def find_by_expiry(
        self,
        not_valid_after: int | None,
        offset: int,
        limit: int,
        *,
        owner_key: str | None = None,
        description: str | None = None,
    ) -> Page:
        count, page, args = SQL.expiring(not_valid_after, owner_key, description)
        async with self._read() as conn:
            row = await _first(conn, count, args)
            rows = await conn.execute_fetchall(page, (*args, limit, offset))
        return Page([schema.record(r) for r in rows], int(row[0]) if row else 0)

    async def expiring(self, after: int, not_after: int) -> Sequence[TokenRecord]:
        async with self._read() as conn:
            rows = await conn.execute_fetchall(SQL.expiring_between, (after, not_after))
        return [schema.record(r) for r in rows]

    async def claim_warning(
        self, key: WarningKey, now_ms: int, lease_ms: int, max_attempts: int
    ) -> int | None:
        args = (*SQL.warning_args(key), now_ms, now_ms + lease_ms, max_attempts)
        async with self._write() as conn:
            row = await _first(conn, SQL.claim_warning, args)
        return None if row is None else int(row[0])

    async def warning_sent(self, key: WarningKey, now_ms: int) -> None:
        async with self._write() as conn:
            await conn.execute(SQL.warning_sent, (*SQL.warning_args(key), now_ms))

    async def warning_failed(self, key: WarningKey, retry_at: int) -> int:
        async with self._write() as conn:
            row = await _first(conn, SQL.warning_failed, (*SQL.warning_args(key), retry_at))
        return 0 if row is None else int(row[0])

    async def prune_warnings(self, before: int) -> None:
        async with self._write() as conn:
            await conn.execute(SQL.prune_warnings, (before,))

    async def record_access(self, uses: Mapping[int, Use]) -> None:
        if not uses:
            return
        async with self._write() as conn:
            await conn.execute(SQL.record_access, SQL.access_args(uses))

    async def audit_events(self, query: AuditQuery, offset: int, limit: int) -> AuditPage:
        count, page, args = SQL.audit(query)
        async with self._read() as conn:
            row = await _first(conn, count, args)
            rows = await conn.execute_fetchall(page, (*args, limit, offset))
        return AuditPage([schema.audit_event(r) for r in rows], int(row[0]) if row else 0)

    async def copy_events(self, events: Sequence[AuditEvent]) -> int:
        async with self._write() as conn:
            await conn.executemany(SQL.copy_event, [dataclasses.astuple(e) for e in events])
        return len(events)

    async def prune_audit(self, before: int, limit: int) -> int:
        async with self._write() as conn:
            return len(list(await conn.execute_fetchall(SQL.prune_audit, (before, limit))))

    async def add_failure(self, key: str, now_ms: int, window_ms: int) -> tuple[int, int]:
        async with self._write() as conn:
            row = await _first(conn, SQL.count_failure, (key, now_ms, window_ms))
            await conn.execute(SQL.prune_failures, (now_ms - schema.FAILURE_RETENTION_MS,))
        assert row is not None
        return int(row[0]), int(row[1])

    async def upsert(self, records: Sequence[TokenRecord]) -> int:
        async with self._write() as conn:
            # AUTOINCREMENT remembers the largest id inserted, explicit or not,
            # so new tokens never collide with copied ones.
            await conn.executemany(SQL.upsert, [schema.values(r) for r in records])
        return len(records)

    async def watch(
        self, revoked: Callable[[Sequence[int]], None], reset: Callable[[], None]
    ) -> None:
        """Poll the revocations table: other worker processes share only the file."""
        seq = -1
        while True:
            try:
                seq, ids = await self._revocations_after(seq)
                if ids:
                    revoked(ids)
            except StoreUnavailable as exc:
                log.warning("cannot poll revocations: %s", exc.message)
            await asyncio.sleep(REVOCATION_POLL_SECONDS)

    def listener_up(self) -> None:
        return None  # other processes' revocations are polled (watch)

    async def _revocations_after(self, seq: int) -> tuple[int, Sequence[int]]:
        """Ids deleted after position ``seq``, and the newest position.

        ``seq`` -1 returns the current position only.
        """
        async with self._read() as conn:
            row = await _first(conn, "SELECT coalesce(max(seq), 0) FROM revocations")
            newest = int(row[0]) if row else 0
            if seq < 0 or newest <= seq:
                return newest, []
            rows = await conn.execute_fetchall(
                "SELECT token_id FROM revocations WHERE seq > ?1 AND seq <= ?2", (seq, newest)
            )
        return newest, [int(r[0]) for r in rows]

    async def ping(self) -> None:
        async with self._read() as conn:
            await _first(conn, "SELECT 1")

    async def close(self) -> None:
        async with self._lock:
            await self._conn.close()


async def _first(
    conn: aiosqlite.Connection, statement: str, args: Iterable[Any] = ()
) -> sqlite3.Row | None:
    # Fetching every row finishes the statement: none is left running into COMMIT.
    rows = list(await conn.execute_fetchall(statement, args))
    return rows[0] if rows else None


async def _rollback(conn: aiosqlite.Connection) -> None:
    # SQLite may already have ended the transaction itself (e.g. on a full disk).
    with contextlib.suppress(sqlite3.Error):
        await conn.execute("ROLLBACK")


def _busy(exc: BaseException | None) -> bool:
    """Whether ``exc`` is SQLite's "another connection holds the lock" (worth another try)."""
    code = getattr(exc, "sqlite_errorcode", 0) if isinstance(exc, sqlite3.Error) else 0
    return code & 0xFF == sqlite3.SQLITE_BUSY  # BUSY and its extended codes


def _explain(exc: sqlite3.Error) -> str:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return "the token database is locked by another process; retry shortly"
    if "readonly" in text:
        return "the token database is read-only"
    if "full" in text:
        return "the disk holding the token database is full"
    return f"the token database failed: {text}"
