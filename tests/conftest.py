"""Shared fixtures: each test builds the little world it needs from these."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from apitokenproxy.app import create_app
from apitokenproxy.config import Config, config_from_dict

from .fakes import CONFLUENCE_USERS, JIRA_USERS, FakeUpstream

# 2026-01-15 12:00:00 UTC
START_MS = 1_768_478_400_000


class FakeClock:
    """Milliseconds since the epoch that only move when a test says so."""

    def __init__(self, now: int = START_MS) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


@dataclass
class World:
    upstream: FakeUpstream
    upstream_server: TestServer
    client: TestClient[Any, Any]
    clock: FakeClock
    config: Config


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def base_config(upstream_url: str, db_path: Path, product: str = "jira") -> dict[str, Any]:
    return {
        "upstream": {"url": upstream_url, "product": product},
        "store": {"url": f"sqlite:///{db_path}"},
        "logging": {"access_log": False},
    }


MakeWorld = Callable[..., Awaitable[World]]


@pytest.fixture
def make_world(aiohttp_server: Any, aiohttp_client: Any, tmp_path: Path) -> MakeWorld:
    async def make(product: str = "jira", config: dict[str, Any] | None = None) -> World:
        users = JIRA_USERS if product == "jira" else CONFLUENCE_USERS
        upstream = FakeUpstream(product, users)  # type: ignore[arg-type]
        server = await aiohttp_server(upstream.app())
        raw = deep_merge(
            base_config(str(server.make_url("")).rstrip("/"), tmp_path / "tokens.db", product),
            config or {},
        )
        cfg = config_from_dict(raw)
        clock = FakeClock()
        client = await aiohttp_client(create_app(cfg, clock=clock))
        return World(upstream, server, client, clock, cfg)

    return make


@pytest.fixture
async def jira(make_world: MakeWorld) -> World:
    return await make_world("jira")


@pytest.fixture
async def confluence(make_world: MakeWorld) -> World:
    return await make_world("confluence")
