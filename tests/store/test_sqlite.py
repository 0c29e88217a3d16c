"""What only the SQLite backend promises: pragmas, migrations, translated failures."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import aiosqlite
import pytest

from apitokenproxy.errors import StoreUnavailable
from apitokenproxy.store import NewToken, TokenRecord, WarningKey, open_store
from apitokenproxy.store.audit import Action, How
from apitokenproxy.store.sqlite import MIGRATIONS, SQLiteStore

TOKEN = NewToken("k", "n", "d", "$argon2id$x", 1, None, "k")
ACT = Action(at=1, actor_key="k", actor_name="n", how=How.PASSWORD)


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
    created = await store.create(TOKEN, ACT)
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
    await store.create(TOKEN, ACT)
    await store.close()
    # Open the same file through SQLite's read-only URI mode: writes fail the way
    # a read-only mount does, whoever the process runs as.
    conn = await aiosqlite.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    readonly = SQLiteStore(conn)
    with pytest.raises(StoreUnavailable, match="read-only"):
        await readonly.create(TOKEN, ACT)
    with pytest.raises(StoreUnavailable, match="read-only"):
        await readonly.record_access({1: (5, "192.0.2.1")})
    assert (await readonly.find_by_expiry(None, 0, 10)).total == 1
    await readonly.close()


async def test_a_locked_database_fails_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "tokens.db"
    store = await open_store(f"sqlite:///{path}", busy_timeout_seconds=0.05)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailable, match="locked"):
            await store.create(TOKEN, ACT)
    finally:
        other.execute("ROLLBACK")
        other.close()
    created = await store.create(TOKEN, ACT)
    assert await store.get(created.id) == created
    await store.close()


class _Waiting(logging.Handler):
    """Sets an event when the store says it waits for another process."""

    def __init__(self) -> None:
        super().__init__()
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "being opened by another process" in record.getMessage():
            self.event.set()


@pytest.fixture
def waiting(caplog: pytest.LogCaptureFixture) -> Iterator[asyncio.Event]:
    handler = _Waiting()
    logger = logging.getLogger("apitokenproxy.store.sqlite")
    caplog.set_level(logging.INFO, logger=logger.name)
    logger.addHandler(handler)
    yield handler.event
    logger.removeHandler(handler)


async def test_an_open_waits_for_another_process_setting_up_the_new_file(
    tmp_path: Path, waiting: asyncio.Event
) -> None:
    # Issue 18, item 2: the second of two workers opening a new file failed at
    # once with "locked", busy timeout or not: turning the file to WAL upgrades a
    # read lock, which SQLite refuses without waiting while another connection
    # holds the write lock, as the first opener does while it switches or migrates.
    path = tmp_path / "tokens.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    opening = asyncio.ensure_future(SQLiteStore.open(str(path), busy_timeout_seconds=60))
    waited = asyncio.ensure_future(waiting.wait())
    try:
        done, _ = await asyncio.wait({opening, waited}, return_when=asyncio.FIRST_COMPLETED)
        assert waited in done, f"the open ended first: {opening.exception()!r}"
        assert not opening.done()
    finally:
        other.execute("COMMIT")
        other.close()
    store = await opening
    await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


async def test_an_open_gives_up_when_the_lock_outlasts_the_busy_timeout(
    tmp_path: Path, waiting: asyncio.Event
) -> None:
    path = tmp_path / "tokens.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailable, match="locked"):
            await SQLiteStore.open(str(path), busy_timeout_seconds=0.1)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert waiting.is_set()  # it did wait before giving up


async def test_concurrent_opens_of_a_new_file_all_succeed(tmp_path: Path) -> None:
    # Before the fix, one round in ten or so failed here (three openers).
    for attempt in range(40):
        path = str(tmp_path / f"{attempt}.db")
        stores = await asyncio.gather(*(SQLiteStore.open(path) for _ in range(3)))
        for store in stores:
            await store.close()


# The tables as releases before the shared schema module created them, verbatim.
RELEASED_V1 = (
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
    "CREATE INDEX tokens_expiry ON tokens ((valid_until IS NULL), valid_until, id)",
    """CREATE TABLE revocations (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        token_id INTEGER NOT NULL,
        at INTEGER NOT NULL
    )""",
)
RELEASED_V2 = (
    """CREATE TABLE failures (
        key TEXT PRIMARY KEY,
        window_start INTEGER NOT NULL,
        count INTEGER NOT NULL
    )""",
)


@pytest.mark.parametrize("steps", [(RELEASED_V1,), (RELEASED_V1, RELEASED_V2)])
async def test_a_database_of_an_earlier_release_opens_and_works(
    tmp_path: Path, steps: tuple[tuple[str, ...], ...]
) -> None:
    path = tmp_path / "tokens.db"
    with sqlite3.connect(path) as conn:
        for statement in (s for step in steps for s in step):
            conn.execute(statement)
        conn.execute(
            "INSERT INTO tokens (owner_key, owner_name, description, secret_hash, created,"
            " valid_until, last_accessed, created_by_key)"
            " VALUES ('k', 'n', 'd', '$argon2id$x', 1, NULL, 9, 'k')"
        )
        conn.execute(f"PRAGMA user_version = {len(steps)}")
    store = await open_store(f"sqlite:///{path}")
    try:
        assert await store.list_owned("k") == [
            TokenRecord(1, "k", "n", "d", "$argon2id$x", 1, None, 9, "k")
        ]
        assert (await store.create(TOKEN, ACT)).id == 2
        assert await store.add_failure("x", 10, 60_000) == (10, 1)
        assert await store.delete_all_for("k", ACT) == [1, 2]
        assert await store.claim_warning(WarningKey(3, 14, 5, "email"), 1, 10, 5) == 0
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        # Every later step applied on top: the latest version, whatever it is now.
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
