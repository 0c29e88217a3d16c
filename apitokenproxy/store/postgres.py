"""The shared store: PostgreSQL through asyncpg, for several proxy instances.

- A connection pool sized by ``store.pool_size``; asyncpg replaces broken
  connections by itself, so the store recovers when the database returns.
- Migrations run under a transaction-scoped advisory lock, so instances
  starting together apply each one exactly once.
- Deletions, rotations and policy changes announce themselves with
  ``NOTIFY`` in the same transaction (delivered only if it commits). Each
  instance ``LISTEN``s on a dedicated connection; when that connection drops
  it reconnects and asks its owner to forget every verified token, since
  notifications sent meanwhile are lost.
- ``lastAccessed`` batches are one ``UPDATE ... FROM unnest(...)`` with
  ``GREATEST``, so two instances flushing the same token keep the later time.

Connection strings may carry server settings as query parameters (asyncpg
passes them on), e.g. ``?search_path=apitokenproxy`` to keep the tables in a
schema of their own. The statements are ``statements.py``'s and the changes to
tokens ``changes.py``'s; asyncpg and OS errors are translated to
``StoreUnavailable`` here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence

import asyncpg

from ..errors import StoreUnavailable
from . import schema
from .audit import AuditEvent, AuditPage, AuditQuery
from .base import Page, TokenRecord, Use, WarningKey
from .changes import Changes, Session
from .statements import FAILURE_RETENTION_MS, for_dialect

log = logging.getLogger(__name__)

MIGRATIONS = schema.migrations(schema.POSTGRES)

# pg_advisory_xact_lock key: "apitokenproxy migrations", any fixed 64-bit number.
MIGRATION_LOCK = 0x61707470_6D696772
CHANNEL = "apitokenproxy_revocations"
# pg_advisory_xact_lock(class, hashtext(owner_key)): one owner's creations queue
# behind each other while the per-user limit is counted. "ownr" in ASCII.
OWNER_LOCK_CLASS = 0x6F776E72
RECONNECT_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)

_CONNECTION_ERRORS = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    OSError,
    TimeoutError,
)


class PostgresStore(Changes):
    """``TokenStore`` on a PostgreSQL database shared by every instance; its changes
    are ``Changes``'."""

    SQL = for_dialect(schema.POSTGRES)

    def __init__(self, pool: asyncpg.Pool, url: str, schema: str) -> None:
        self._pool = pool
        self._url = url
        self._schema = schema
        self._listening = False  # see listener_up

    @classmethod
    async def open(
        cls, url: str, *, pool_size: int = 10, wait_seconds: float = 5.0
    ) -> PostgresStore:
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=pool_size,
                timeout=wait_seconds,
                command_timeout=wait_seconds,
            )
        except (*_CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            raise StoreUnavailable(_explain(exc)) from exc
        assert pool is not None
        try:
            async with pool.acquire() as conn:
                schema = str(await conn.fetchval("SELECT current_schema()"))
            store = cls(pool, url, schema)
            await store.migrate()
        except BaseException:
            await pool.close()
            raise
        return store

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except (*_CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            raise StoreUnavailable(_explain(exc)) from exc

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._connection() as conn, conn.transaction():
            yield conn

    async def migrate(self) -> int:
        """Apply pending migrations under an advisory lock; return the version in force.

        Each applied version is a row of ``schema_version``.
        """
        async with self._transaction() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
            )
            return await schema.migrate(
                MIGRATIONS,
                await conn.fetchval("SELECT max(version) FROM schema_version") or 0,
                execute=conn.execute,
                record_version=lambda number: conn.execute(
                    "INSERT INTO schema_version (version) VALUES ($1)", number
                ),
            )

    async def get(self, token_id: int) -> TokenRecord | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(self.SQL.get, token_id)
        return None if row is None else schema.record(row)

    async def list_owned(self, owner_key: str) -> Sequence[TokenRecord]:
        async with self._connection() as conn:
            rows = await conn.fetch(self.SQL.list_owned, owner_key)
        return [schema.record(r) for r in rows]

    async def _hold_owner(self, session: Session, owner_key: str) -> None:
        # Read committed alone would let two instances both count below the limit.
        await session.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))", OWNER_LOCK_CLASS, owner_key
        )

    async def _notify(self, session: Session, ids: Sequence[int]) -> None:
        # Delivered at commit, and only if the transaction commits.
        await session.execute(
            "SELECT pg_notify($1, $2)", CHANNEL, f"{self._schema}:{','.join(map(str, ids))}"
        )

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
        async with self._connection() as conn:
            total = await conn.fetchval(count, *args)
            rows = await conn.fetch(page, *args, limit, offset)
        return Page([schema.record(r) for r in rows], int(total))

    async def expiring(self, after: int, not_after: int) -> Sequence[TokenRecord]:
        async with self._connection() as conn:
            rows = await conn.fetch(self.SQL.expiring_between, after, not_after)
        return [schema.record(r) for r in rows]

    async def claim_warning(
        self, key: WarningKey, now_ms: int, lease_ms: int, max_attempts: int
    ) -> int | None:
        async with self._connection() as conn:
            attempts = await conn.fetchval(
                self.SQL.claim_warning,
                *self.SQL.warning_args(key),
                now_ms,
                now_ms + lease_ms,
                max_attempts,
            )
        return None if attempts is None else int(attempts)

    async def warning_sent(self, key: WarningKey, now_ms: int) -> None:
        async with self._connection() as conn:
            await conn.execute(self.SQL.warning_sent, *self.SQL.warning_args(key), now_ms)

    async def warning_failed(self, key: WarningKey, retry_at: int) -> int:
        async with self._connection() as conn:
            attempts = await conn.fetchval(
                self.SQL.warning_failed, *self.SQL.warning_args(key), retry_at
            )
        return 0 if attempts is None else int(attempts)

    async def prune_warnings(self, before: int) -> None:
        async with self._connection() as conn:
            await conn.execute(self.SQL.prune_warnings, before)

    async def record_access(self, uses: Mapping[int, Use]) -> None:
        if not uses:
            return
        async with self._connection() as conn:
            await conn.execute(self.SQL.record_access, *self.SQL.access_args(uses))

    async def audit_events(self, query: AuditQuery, offset: int, limit: int) -> AuditPage:
        count, page, args = self.SQL.audit(query)
        async with self._connection() as conn:
            total = await conn.fetchval(count, *args)
            rows = await conn.fetch(page, *args, limit, offset)
        return AuditPage([schema.audit_event(r) for r in rows], int(total))

    async def copy_events(self, events: Sequence[AuditEvent]) -> int:
        async with self._transaction() as conn:
            await conn.executemany(self.SQL.copy_event, [dataclasses.astuple(e) for e in events])
            # As for tokens: explicit ids do not move the sequence.
            await conn.execute(
                "SELECT setval(pg_get_serial_sequence('audit_events', 'id'),"
                " greatest((SELECT max(id) FROM audit_events), 1))"
            )
        return len(events)

    async def prune_audit(self, before: int, limit: int) -> int:
        async with self._connection() as conn:
            return len(await conn.fetch(self.SQL.prune_audit, before, limit))

    async def add_failure(self, key: str, now_ms: int, window_ms: int) -> tuple[int, int]:
        async with self._transaction() as conn:
            row = await conn.fetchrow(self.SQL.count_failure, key, now_ms, window_ms)
            await conn.execute(self.SQL.prune_failures, now_ms - FAILURE_RETENTION_MS)
        assert row is not None
        return int(row[0]), int(row[1])

    async def upsert(self, records: Sequence[TokenRecord]) -> int:
        async with self._transaction() as conn:
            await conn.executemany(self.SQL.upsert, [schema.values(r) for r in records])
            # Explicit ids do not move the identity sequence; new tokens must
            # not collide with copied ones.
            await conn.execute(
                "SELECT setval(pg_get_serial_sequence('tokens', 'id'),"
                " greatest((SELECT max(id) FROM tokens), 1))"
            )
        return len(records)

    async def watch(
        self, revoked: Callable[[Sequence[int]], None], reset: Callable[[], None]
    ) -> None:
        """LISTEN on a dedicated connection; after a drop, reconnect and ``reset``."""
        prefix = f"{self._schema}:"
        lost = asyncio.Event()

        def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            if payload.startswith(prefix):
                revoked([int(i) for i in payload[len(prefix) :].split(",") if i])

        attempt = 0
        connected_before = False
        while True:
            try:
                conn = await asyncpg.connect(self._url, timeout=5)
            except (*_CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
                delay = RECONNECT_SECONDS[min(attempt, len(RECONNECT_SECONDS) - 1)]
                attempt += 1
                log.warning("revocation listener cannot connect (%s); retry in %s s", exc, delay)
                await asyncio.sleep(delay)
                continue
            try:
                lost.clear()
                conn.add_termination_listener(lambda _conn: lost.set())
                await conn.add_listener(CHANNEL, on_notify)
                self._listening = True
                if connected_before:
                    # Revocations sent while we were away are lost: forget everything.
                    reset()
                    log.warning("revocation listener reconnected; verified-token cache cleared")
                connected_before, attempt = True, 0
                await self._wait_until_lost(conn, lost)
            except (*_CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
                log.warning("revocation listener lost its connection: %s", exc)
            finally:
                self._listening = False
                with contextlib.suppress(Exception):
                    await asyncio.shield(conn.close(timeout=1))

    def listener_up(self) -> bool:
        return self._listening

    @staticmethod
    async def _wait_until_lost(conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        # A dead peer is not always noticed by an idle connection: ask every second.
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), 1.0)
            if not lost.is_set():
                await conn.execute("SELECT 1", timeout=2)

    async def ping(self) -> None:
        async with self._connection() as conn:
            await conn.fetchval("SELECT 1")

    async def close(self) -> None:
        if not self._pool.is_closing():
            await self._pool.close()


def _explain(exc: BaseException) -> str:
    if isinstance(exc, asyncpg.ReadOnlySQLTransactionError):
        return "the token database is read-only"
    if isinstance(exc, asyncpg.DiskFullError):
        return "the disk holding the token database is full"
    if isinstance(exc, asyncpg.PostgresError):
        return f"the token database failed: {exc}"
    return f"the token database cannot be reached ({type(exc).__name__})"
