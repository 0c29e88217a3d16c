"""What only the SQLite backend promises: pragmas, migrations, translated failures."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite
import pytest

from apitokenproxy.errors import StoreUnavailable
from apitokenproxy.store import NewToken, open_store
from apitokenproxy.store.sqlite import MIGRATIONS, SQLiteStore

TOKEN = NewToken("k", "n", "d", "$argon2id$x", 1, None, "k")


async def test_wal_and_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "tokens.db"  # parents are created
    store = await open_store(f"sqlite:///{path}")
    await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


async def test_reopening_keeps_data_and_does_not_migrate_twice(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tokens.db'}"
    store = await open_store(url)
    created = await store.create(TOKEN)
    await store.close()
    store = await open_store(url)
    assert isinstance(store, SQLiteStore)
    assert await store.migrate() == len(MIGRATIONS)
    assert await store.get(created.id) == created
    await store.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokens.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StoreUnavailable, match="newer than this"):
        await open_store(f"sqlite:///{path}")


async def test_read_only_connection_fails_writes_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "tokens.db"
    store = await open_store(f"sqlite:///{path}")
    await store.create(TOKEN)
    await store.close()
    # Open the same file through SQLite's read-only URI mode: writes fail the way
    # a read-only mount does, whoever the process runs as.
    conn = await aiosqlite.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    readonly = SQLiteStore(conn)
    with pytest.raises(StoreUnavailable, match="read-only"):
        await readonly.create(TOKEN)
    with pytest.raises(StoreUnavailable, match="read-only"):
        await readonly.record_access({1: 5})
    assert (await readonly.find_by_expiry(None, 0, 10)).total == 1
    await readonly.close()


async def test_a_locked_database_fails_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "tokens.db"
    store = await open_store(f"sqlite:///{path}", busy_timeout_seconds=0.05)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailable, match="locked"):
            await store.create(TOKEN)
    finally:
        other.execute("ROLLBACK")
        other.close()
    created = await store.create(TOKEN)
    assert await store.get(created.id) == created
    await store.close()
