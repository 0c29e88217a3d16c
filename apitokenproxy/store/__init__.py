"""The token store: a narrow interface and the backends behind it.

``TokenStore`` is all the rest of the proxy knows about persistence. Every
backend passes the same contract suite (``tests/store/test_contract.py``).
Backend errors are translated into ``StoreUnavailable`` inside each backend.
"""

from __future__ import annotations

from .base import NewToken, Page, TokenRecord, TokenStore


async def open_store(url: str, *, busy_timeout_seconds: float = 5.0) -> TokenStore:
    """Open (creating and migrating as needed) the store named by a ``store.url``."""
    if url.startswith("sqlite:///"):
        from .sqlite import SQLiteStore

        return await SQLiteStore.open(url.removeprefix("sqlite:///"), busy_timeout_seconds)
    raise ValueError(f"unsupported store URL scheme: {url.split(':', 1)[0]}")


__all__ = ["NewToken", "Page", "TokenRecord", "TokenStore", "open_store"]
