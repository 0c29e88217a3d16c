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

The statements are ``statements.py``'s and the changes to tokens ``changes.py``'s;
sqlite3 errors become ``StoreUnavailable`` here.
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
from .audit import AuditEvent, AuditPage, AuditQuery
from .base import (
    REVOCATION_POLL_SECONDS,
    Page,
    TokenRecord,
    Use,
    WarningKey,
)
from .changes import Changes, Session
from .statements import FAILURE_RETENTION_MS, for_dialect

log = logging.getLogger(__name__)

MIGRATIONS = schema.migrations(schema.SQLITE)
# Waits between tries while another process holds a new file's write lock.
RETRY_FIRST_SECONDS = 0.01
RETRY_MAX_SECONDS = 0.25


class SQLiteStore(Changes):
    """``TokenStore`` on a SQLite file; its changes are ``Changes``'."""

    SQL = for_dialect(schema.SQLITE)

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

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Session]:
        async with self._write() as conn:
            yield _Session(conn)

    async def get(self, token_id: int) -> TokenRecord | None:
        async with self._read() as conn:
            row = await _first(conn, self.SQL.get, (token_id,))
        return None if row is None else schema.record(row)

    async def list_owned(self, owner_key: str) -> Sequence[TokenRecord]:
        async with self._read() as conn:
            rows = await conn.execute_fetchall(self.SQL.list_owned, (owner_key,))
        return [schema.record(r) for r in rows]

    async def _hold_owner(self, session: Session, owner_key: str) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` holds the write lock from the count to the insert."""

    async def _notify(self, session: Session, ids: Sequence[int]) -> None:
        """Nothing to do: other processes poll the revocations table (``watch``)."""

    async def find_by_expiry(
        self,
        not_valid_after: int | None,
        offset: int,
        limit: int,
        *,
        owner_key: str | None = None,
        description: str | None = None,
    ) -> Page:
        count, page, args = self.SQL.expiring(not_valid_after, owner_key, description)
        async with self._read() as conn:
            row = await _first(conn, count, args)
            rows = await conn.execute_fetchall(page, (*args, limit, offset))
        return Page([schema.record(r) for r in rows], int(row[0]) if row else 0)

    async def expiring(self, after: int, not_after: int) -> Sequence[TokenRecord]:
        async with self._read() as conn:
            rows = await conn.execute_fetchall(self.SQL.expiring_between, (after, not_after))
        return [schema.record(r) for r in rows]

    async def claim_warning(
        self, key: WarningKey, now_ms: int, lease_ms: int, max_attempts: int
    ) -> int | None:
        args = (*self.SQL.warning_args(key), now_ms, now_ms + lease_ms, max_attempts)
        async with self._write() as conn:
            row = await _first(conn, self.SQL.claim_warning, args)
        return None if row is None else int(row[0])

    async def warning_sent(self, key: WarningKey, now_ms: int) -> None:
        async with self._write() as conn:
            await conn.execute(self.SQL.warning_sent, (*self.SQL.warning_args(key), now_ms))

    async def warning_failed(self, key: WarningKey, retry_at: int) -> int:
        async with self._write() as conn:
            row = await _first(
                conn, self.SQL.warning_failed, (*self.SQL.warning_args(key), retry_at)
            )
        return 0 if row is None else int(row[0])

    async def prune_warnings(self, before: int) -> None:
        async with self._write() as conn:
            await conn.execute(self.SQL.prune_warnings, (before,))

    async def record_access(self, uses: Mapping[int, Use]) -> None:
        if not uses:
            return
        async with self._write() as conn:
            await conn.execute(self.SQL.record_access, self.SQL.access_args(uses))

    async def audit_events(self, query: AuditQuery, offset: int, limit: int) -> AuditPage:
        count, page, args = self.SQL.audit(query)
        async with self._read() as conn:
            row = await _first(conn, count, args)
            rows = await conn.execute_fetchall(page, (*args, limit, offset))
        return AuditPage([schema.audit_event(r) for r in rows], int(row[0]) if row else 0)

    async def copy_events(self, events: Sequence[AuditEvent]) -> int:
        async with self._write() as conn:
            await conn.executemany(self.SQL.copy_event, [dataclasses.astuple(e) for e in events])
        return len(events)

    async def prune_audit(self, before: int, limit: int) -> int:
        async with self._write() as conn:
            return len(list(await conn.execute_fetchall(self.SQL.prune_audit, (before, limit))))

    async def add_failure(self, key: str, now_ms: int, window_ms: int) -> tuple[int, int]:
        async with self._write() as conn:
            row = await _first(conn, self.SQL.count_failure, (key, now_ms, window_ms))
            await conn.execute(self.SQL.prune_failures, (now_ms - FAILURE_RETENTION_MS,))
        assert row is not None
        return int(row[0]), int(row[1])

    async def upsert(self, records: Sequence[TokenRecord]) -> int:
        async with self._write() as conn:
            # AUTOINCREMENT remembers the largest id inserted, explicit or not,
            # so new tokens never collide with copied ones.
            await conn.executemany(self.SQL.upsert, [schema.values(r) for r in records])
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


class _Session:
    """An aiosqlite connection in a transaction, called as ``Changes`` calls asyncpg's."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def fetchrow(self, statement: str, *args: Any) -> sqlite3.Row | None:
        return await _first(self._conn, statement, args)

    async def fetch(self, statement: str, *args: Any) -> list[sqlite3.Row]:
        return list(await self._conn.execute_fetchall(statement, args))

    async def execute(self, statement: str, *args: Any) -> object:
        return await self._conn.execute(statement, args)

    async def executemany(self, statement: str, args: Iterable[Sequence[Any]]) -> object:
        return await self._conn.executemany(statement, args)


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
