"""The embedded store: SQLite through aiosqlite.

One connection per process, in WAL mode (readers never wait for the writer)
with a busy timeout (several worker processes share the file). Every method
runs under one asyncio lock, because statements of concurrent coroutines
would otherwise interleave inside each other's transactions on the shared
connection. Writes use ``BEGIN IMMEDIATE`` so two processes never deadlock
upgrading a read lock, and roll back on any error: nothing is half-written.
``synchronous=FULL`` makes a reported creation or deletion survive a crash or
power loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from ..errors import StoreUnavailable
from .base import REVOCATION_POLL_SECONDS, NewToken, Page, TokenRecord

log = logging.getLogger(__name__)

# Each entry moves the schema from version i to i+1; applied in one transaction.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE tokens (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            owner_key TEXT NOT NULL,
            owner_name TEXT NOT NULL,
            description TEXT NOT NULL,
            secret_hash TEXT NOT NULL,
            created INTEGER NOT NULL,
            valid_until INTEGER,
            last_accessed INTEGER NOT NULL DEFAULT 0,
            created_by_key TEXT NOT NULL
        )""",
        "CREATE INDEX tokens_owner ON tokens (owner_key, id)",
        # Never-expiring tokens sort last: (valid_until IS NULL, valid_until, id).
        "CREATE INDEX tokens_expiry ON tokens ((valid_until IS NULL), valid_until, id)",
        """CREATE TABLE revocations (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            token_id INTEGER NOT NULL,
            at INTEGER NOT NULL
        )""",
    ),
    (
        """CREATE TABLE failures (
            key TEXT PRIMARY KEY,
            window_start INTEGER NOT NULL,
            count INTEGER NOT NULL
        )""",
    ),
)

# Revocation rows only need to outlive the slowest poller by a wide margin.
REVOCATION_RETENTION_MS = 3_600_000
# Failure windows are short; day-old rows are of no use to anyone.
FAILURE_RETENTION_MS = 86_400_000

# Counts a failure: a window older than the limit starts afresh at 1.
_UPSERT_FAILURE = """
    INSERT INTO failures (key, window_start, count) VALUES (?1, ?2, 1)
    ON CONFLICT (key) DO UPDATE SET
        count = CASE WHEN failures.window_start <= ?2 - ?3 THEN 1 ELSE failures.count + 1 END,
        window_start = CASE WHEN failures.window_start <= ?2 - ?3 THEN ?2
                            ELSE failures.window_start END
    RETURNING window_start, count
"""

_COLUMNS = (
    "id, owner_key, owner_name, description, secret_hash, created, valid_until, "
    "last_accessed, created_by_key"
)


def _record(row: Any) -> TokenRecord:
    return TokenRecord(*row)


class SQLiteStore:
    """``TokenStore`` on a SQLite file."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str, busy_timeout_seconds: float = 5.0) -> SQLiteStore:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open the token database {path}: {exc}") from exc
        store = cls(conn)
        try:
            async with store._translated():
                await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_seconds * 1000)}")
                await conn.execute("PRAGMA journal_mode = WAL")
                await conn.execute("PRAGMA synchronous = FULL")
            await store.migrate()
        except BaseException:
            await conn.close()
            raise
        return store

    async def migrate(self) -> int:
        """Apply pending migrations; return the schema version now in force."""
        async with self._write() as conn:
            async with conn.execute("PRAGMA user_version") as cur:
                row = await cur.fetchone()
            version = int(row[0]) if row else 0
            if version > len(MIGRATIONS):
                raise StoreUnavailable(
                    f"the token database has schema version {version}, newer than this "
                    f"apitokenproxy knows ({len(MIGRATIONS)}); upgrade apitokenproxy"
                )
            for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in statements:
                    await conn.execute(statement)
                await conn.execute(f"PRAGMA user_version = {number}")
            return len(MIGRATIONS)

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

    async def create(self, token: NewToken) -> TokenRecord:
        async with self._write() as conn:
            cur = await conn.execute(
                "INSERT INTO tokens (owner_key, owner_name, description, secret_hash, created,"
                " valid_until, last_accessed, created_by_key) VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
                (
                    token.owner_key,
                    token.owner_name,
                    token.description,
                    token.secret_hash,
                    token.created,
                    token.valid_until,
                    token.created_by_key,
                ),
            )
            token_id = cur.lastrowid
            await cur.close()
        assert token_id is not None
        return TokenRecord(
            id=token_id,
            owner_key=token.owner_key,
            owner_name=token.owner_name,
            description=token.description,
            secret_hash=token.secret_hash,
            created=token.created,
            valid_until=token.valid_until,
            last_accessed=0,
            created_by_key=token.created_by_key,
        )

    async def get(self, token_id: int) -> TokenRecord | None:
        async with (
            self._read() as conn,
            conn.execute(f"SELECT {_COLUMNS} FROM tokens WHERE id = ?", (token_id,)) as cur,
        ):
            row = await cur.fetchone()
        return None if row is None else _record(row)

    async def list_owned(self, owner_key: str) -> Sequence[TokenRecord]:
        async with (
            self._read() as conn,
            conn.execute(
                f"SELECT {_COLUMNS} FROM tokens WHERE owner_key = ? ORDER BY id", (owner_key,)
            ) as cur,
        ):
            rows = await cur.fetchall()
        return [_record(r) for r in rows]

    async def update_description(self, token_id: int, description: str) -> TokenRecord | None:
        async with self._write() as conn:
            await conn.execute(
                "UPDATE tokens SET description = ? WHERE id = ?", (description, token_id)
            )
            async with conn.execute(
                f"SELECT {_COLUMNS} FROM tokens WHERE id = ?", (token_id,)
            ) as cur:
                row = await cur.fetchone()
        return None if row is None else _record(row)

    async def delete(self, token_id: int) -> bool:
        return bool(await self._delete_where("id = ?", token_id))

    async def delete_all_for(self, owner_key: str) -> Sequence[int]:
        return await self._delete_where("owner_key = ?", owner_key)

    async def _delete_where(self, condition: str, value: object) -> list[int]:
        now = _now_ms()
        async with self._write() as conn:
            async with conn.execute(f"SELECT id FROM tokens WHERE {condition}", (value,)) as cur:
                ids = [int(r[0]) for r in await cur.fetchall()]
            if ids:
                await conn.execute(f"DELETE FROM tokens WHERE {condition}", (value,))
                await conn.executemany(
                    "INSERT INTO revocations (token_id, at) VALUES (?, ?)",
                    [(i, now) for i in ids],
                )
                await conn.execute(
                    "DELETE FROM revocations WHERE at < ?", (now - REVOCATION_RETENTION_MS,)
                )
        return ids

    async def find_by_expiry(self, not_valid_after: int | None, offset: int, limit: int) -> Page:
        where, params = (
            ("", ())
            if not_valid_after is None
            else (
                "WHERE valid_until <= ?",
                (not_valid_after,),
            )
        )
        async with self._read() as conn:
            async with conn.execute(f"SELECT count(*) FROM tokens {where}", params) as cur:
                row = await cur.fetchone()
            total = int(row[0]) if row else 0
            async with conn.execute(
                f"SELECT {_COLUMNS} FROM tokens {where}"
                " ORDER BY (valid_until IS NULL), valid_until, id LIMIT ? OFFSET ?",
                (*params, limit, offset),
            ) as cur:
                rows = await cur.fetchall()
        return Page([_record(r) for r in rows], total)

    async def record_access(self, times: Mapping[int, int]) -> None:
        if not times:
            return
        async with self._write() as conn:
            # One statement for the whole batch; the later time always wins.
            await conn.execute(
                "UPDATE tokens SET last_accessed = max(tokens.last_accessed, batch.at)"
                " FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS at"
                "       FROM json_each(?)) AS batch"
                " WHERE tokens.id = batch.id",
                (json.dumps(list(times.items())),),
            )

    async def add_failure(self, key: str, now_ms: int, window_ms: int) -> tuple[int, int]:
        async with self._write() as conn:
            async with conn.execute(_UPSERT_FAILURE, (key, now_ms, window_ms)) as cur:
                row = await cur.fetchone()
            await conn.execute(
                "DELETE FROM failures WHERE window_start < ?", (now_ms - FAILURE_RETENTION_MS,)
            )
        assert row is not None
        return int(row[0]), int(row[1])

    async def upsert(self, records: Sequence[TokenRecord]) -> int:
        async with self._write() as conn:
            await conn.executemany(
                f"INSERT INTO tokens ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET owner_key = excluded.owner_key,"
                " owner_name = excluded.owner_name, description = excluded.description,"
                " secret_hash = excluded.secret_hash, created = excluded.created,"
                " valid_until = excluded.valid_until,"
                " last_accessed = max(tokens.last_accessed, excluded.last_accessed),"
                " created_by_key = excluded.created_by_key",
                [dataclasses.astuple(r) for r in records],
            )
        return len(records)

    async def watch(
        self, revoked: Callable[[Sequence[int]], None], reset: Callable[[], None]
    ) -> None:
        """Poll the revocations table: other worker processes share only the file."""
        seq = -1
        while True:
            try:
                seq, ids = await self.revocations_after(seq)
                if ids:
                    revoked(ids)
            except StoreUnavailable as exc:
                log.warning("cannot poll revocations: %s", exc.message)
            await asyncio.sleep(REVOCATION_POLL_SECONDS)

    async def revocations_after(self, seq: int) -> tuple[int, Sequence[int]]:
        async with self._read() as conn:
            async with conn.execute("SELECT coalesce(max(seq), 0) FROM revocations") as cur:
                row = await cur.fetchone()
            newest = int(row[0]) if row else 0
            if seq < 0 or newest <= seq:
                return newest, []
            async with conn.execute(
                "SELECT token_id FROM revocations WHERE seq > ? AND seq <= ?", (seq, newest)
            ) as cur:
                ids = [int(r[0]) for r in await cur.fetchall()]
        return newest, ids

    async def ping(self) -> None:
        async with self._read() as conn, conn.execute("SELECT 1") as cur:
            await cur.fetchone()

    async def close(self) -> None:
        async with self._lock:
            await self._conn.close()


async def _rollback(conn: aiosqlite.Connection) -> None:
    # SQLite may already have ended the transaction itself (e.g. on a full disk).
    with contextlib.suppress(sqlite3.Error):
        await conn.execute("ROLLBACK")


def _explain(exc: sqlite3.Error) -> str:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return "the token database is locked by another process; retry shortly"
    if "readonly" in text:
        return "the token database is read-only"
    if "full" in text:
        return "the disk holding the token database is full"
    return f"the token database failed: {text}"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
