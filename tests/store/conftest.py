"""Store backends under one fixture, so the contract suite runs unchanged on each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from apitokenproxy.store import TokenStore, open_store


@pytest.fixture(params=["sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TokenStore]:
    opened = await open_store(f"sqlite:///{tmp_path / 'tokens.db'}")
    try:
        yield opened
    finally:
        await opened.close()
