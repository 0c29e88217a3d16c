"""The token store: a narrow interface and the backends behind it.

``TokenStore`` is all the rest of the proxy knows about persistence. Every
backend passes the same contract suite (``tests/store/test_contract.py``).
Backend errors are translated into ``StoreUnavailable`` inside each backend.
What the backends share is written once: the tables (``schema.py``), the
statements (``statements.py``) and the changes with their audit events
(``changes.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ..config import StoreConfig
from ..errors import StoreUnavailable
from .base import NewToken, Page, TokenRecord, TokenStore, WarningKey


async def open_store(
    url: str, *, busy_timeout_seconds: float = 5.0, pool_size: int = 10
) -> TokenStore:
    """Open (creating and migrating as needed) the store named by a ``store.url``.

    Each backend is imported only when used, so SQLite users need no asyncpg.
    """
    if url.startswith("sqlite:///"):
        from .sqlite import SQLiteStore

        return await SQLiteStore.open(url.removeprefix("sqlite:///"), busy_timeout_seconds)
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from .postgres import PostgresStore
        except ImportError as exc:
            raise StoreUnavailable(
                "a postgresql:// store needs asyncpg: pip install 'apitokenproxy[postgres]'"
            ) from exc

        return await PostgresStore.open(url, pool_size=pool_size, wait_seconds=busy_timeout_seconds)
    raise ValueError(f"unsupported store URL scheme: {url.split(':', 1)[0]}")


async def open_configured(config: StoreConfig) -> TokenStore:
    return await open_store(
        config.url, busy_timeout_seconds=config.busy_timeout_seconds, pool_size=config.pool_size
    )


@asynccontextmanager
async def opened(config: StoreConfig | str) -> AsyncIterator[TokenStore]:
    """A store for one command's lifetime, closed afterwards.

    A bare URL stands for a ``StoreConfig`` with that URL and default settings.
    """
    store = await open_configured(StoreConfig(url=config) if isinstance(config, str) else config)
    try:
        yield store
    finally:
        await store.close()


__all__ = [
    "NewToken",
    "Page",
    "TokenRecord",
    "TokenStore",
    "WarningKey",
    "open_configured",
    "open_store",
    "opened",
]
