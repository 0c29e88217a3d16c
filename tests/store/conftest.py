"""Store backends under one fixture, so the contract suite runs unchanged on each."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from apitokenproxy.store import TokenStore, opened


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[TokenStore]:
    async with opened(store_url) as store:
        yield store
