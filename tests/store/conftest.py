"""Store backends under one fixture, so the contract suite runs unchanged on each."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from apitokenproxy.store import TokenStore, open_store


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[TokenStore]:
    opened = await open_store(store_url)
    try:
        yield opened
    finally:
        await opened.close()
