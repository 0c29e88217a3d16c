"""``opened``: a command's store honours the whole ``store`` section, not just its URL."""

from __future__ import annotations

from pathlib import Path

from apitokenproxy.config import StoreConfig
from apitokenproxy.store import opened
from apitokenproxy.store.sqlite import SQLiteStore


async def test_opened_applies_busy_timeout_and_pool_size(store_url: str) -> None:
    # Neither is a default: a store opened from the URL alone fails here.
    config = StoreConfig(url=store_url, busy_timeout_seconds=1.25, pool_size=3)
    async with opened(config) as store:
        if isinstance(store, SQLiteStore):
            assert await _busy_timeout_ms(store) == 1250
        else:
            from apitokenproxy.store.postgres import PostgresStore

            assert isinstance(store, PostgresStore)
            assert store._pool.get_max_size() == 3


async def test_a_bare_url_takes_the_default_settings(tmp_path: Path) -> None:
    async with opened(f"sqlite:///{tmp_path / 'tokens.db'}") as store:
        assert isinstance(store, SQLiteStore)
        assert await _busy_timeout_ms(store) == StoreConfig().busy_timeout_seconds * 1000


async def _busy_timeout_ms(store: SQLiteStore) -> int:
    async with store._read() as conn:
        rows = list(await conn.execute_fetchall("PRAGMA busy_timeout"))
    return int(rows[0][0])
