"""Shared fixtures: each test builds the little world it needs from these."""

from __future__ import annotations

import asyncio
import copy
import os
import shutil
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from apitokenproxy.app import HEALTH_PREFIX, create_app
from apitokenproxy.config import Config, config_from_dict

from .fakes import CONFLUENCE_USERS, JIRA_USERS, FakeUpstream

# An embedded Tomcat 10, the server Jira and Confluence run on, and Debian's
# Chromium for the pages (tests/peers).
pytest_plugins = ["tests.peers.tomcat", "tests.peers.chromium"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow",
        action="store_true",
        help="also run the tests marked slow (processes, soaks, Tomcat, generated inputs); "
        "CI always does",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "real_argon2: hash with argon2 at the production cost (tests of hashing's cost or time)",
    )


@pytest.fixture(autouse=True)
def cheap_argon2(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id at its least cost, unless a test is marked ``real_argon2``.

    The hashes stay real argon2id, and a verification reads the cost from the
    hash; but at the production cost every token made and checked takes tens of
    milliseconds, most of the plain run's time. Processes the tests start are
    not affected."""
    if request.node.get_closest_marker("real_argon2"):
        return
    from argon2 import PasswordHasher

    from apitokenproxy.auth import hashing

    def cheap(*, time_cost: int, memory_cost: int, parallelism: int) -> PasswordHasher:
        return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)

    monkeypatch.setattr(hashing, "PasswordHasher", cheap)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the slow tests unless --slow: a developer's default run stays short."""
    if config.getoption("--slow"):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


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


def base_config(upstream_url: str, store_url: str, product: str = "jira") -> dict[str, Any]:
    return {
        "upstream": {"url": upstream_url, "product": product},
        "store": {"url": store_url},
        "logging": {"access_log": False},
    }


POSTGRES_ENV = "APITOKENPROXY_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "APITOKENPROXY_REQUIRE_POSTGRES"


def _postgres_base() -> str:
    base = os.environ.get(POSTGRES_ENV)
    if base:
        return base
    if os.environ.get(REQUIRE_POSTGRES_ENV):
        pytest.fail(f"{REQUIRE_POSTGRES_ENV} is set but {POSTGRES_ENV} is not")
    pytest.skip(
        f"PostgreSQL tests are off: set {POSTGRES_ENV}=postgresql://USER@HOST:5432/DB "
        "(a database where the tests may create schemas) to run them"
    )


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose tables live in a fresh schema, dropped afterwards."""
    import asyncpg

    base = _postgres_base()
    schema = f"test_{uuid.uuid4().hex[:12]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(base, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f"CREATE SCHEMA {schema}"))
    yield f"{base}{'&' if '?' in base else '?'}search_path={schema}"
    asyncio.run(run(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store backend in turn: tests that take this run on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tokens.db'}"
    return str(request.getfixturevalue("postgres_url"))


LANES = {"fast": {"proxy": {"fast_path": True}}, "aiohttp": {"proxy": {"fast_path": False}}}


@pytest.fixture(params=sorted(LANES))
def lane(request: pytest.FixtureRequest) -> str:
    """Each data-path lane in turn, as uvicorn runs its suite over both HTTP
    implementations: end-to-end tests that take a world run on both."""
    return str(request.param)


MakeWorld = Callable[..., Awaitable[World]]


class GatewayTestServer(TestServer):
    """The app served exactly as ``apitokenproxy serve`` serves it: the gateway's
    connection handler and the fast lane in front of aiohttp."""

    async def start_server(self, loop: Any = None, **kwargs: Any) -> None:
        from apitokenproxy.server import start_site

        if self.runner:
            return
        self.runner = await start_site(self.app, self.host, 0)
        self.port = self.runner.addresses[0][1]
        self.scheme = "http"
        self._root = URL(f"http://{self.host}:{self.port}")


# Served by the proxy itself, not forwarded: the token API, the pages, health.
OWN_PATHS = ("/rest/de.resolution.apitokenauth/", "/apitokens", HEALTH_PREFIX)


async def own_calls_close(request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
    """Close the connection after each call the proxy serves itself.

    The fast lane hands a connection to aiohttp for good at its first request
    for the proxy's own paths; without this, the data-path requests a test
    makes after creating a token would all be served by the aiohttp lane,
    whatever lane the test is parametrised with."""
    if request.url.path.startswith(OWN_PATHS):
        request.headers["Connection"] = "close"
    return await handler(request)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite store file with every migration applied, made once per test process."""
    from apitokenproxy.store import opened

    path = tmp_path_factory.mktemp("template") / "tokens.db"

    async def migrate() -> None:
        async with opened(f"sqlite:///{path}"):
            pass

    asyncio.run(migrate())
    return path


@pytest.fixture
def make_world(
    aiohttp_server: Any, aiohttp_client: Any, store_url: str, lane: str, migrated_sqlite: Path
) -> MakeWorld:
    # A world starts from a migrated copy: the migrations' own tests start from nothing.
    if store_url.startswith("sqlite:///"):
        shutil.copyfile(migrated_sqlite, store_url.removeprefix("sqlite:///"))

    async def make(product: str = "jira", config: dict[str, Any] | None = None) -> World:
        users = JIRA_USERS if product == "jira" else CONFLUENCE_USERS
        upstream = FakeUpstream(product, users)  # type: ignore[arg-type]
        server = await aiohttp_server(upstream.app())
        raw = deep_merge(
            deep_merge(
                base_config(str(server.make_url("")).rstrip("/"), store_url, product), LANES[lane]
            ),
            config or {},
        )
        cfg = config_from_dict(raw)
        clock = FakeClock()
        client = await aiohttp_client(
            GatewayTestServer(create_app(cfg, clock=clock)), middlewares=(own_calls_close,)
        )
        return World(upstream, server, client, clock, cfg)

    return make


@pytest.fixture
async def jira(make_world: MakeWorld) -> World:
    return await make_world("jira")


@pytest.fixture
async def confluence(make_world: MakeWorld) -> World:
    return await make_world("confluence")


@dataclass
class Live:
    """The proxy on a real socket, served exactly as ``apitokenproxy serve`` serves it."""

    port: int
    upstream: FakeUpstream
    app: Any
    clock: FakeClock
    upstream_port: int = 0


MakeLive = Callable[..., Awaitable[Live]]


@pytest.fixture
async def make_live(aiohttp_server: Any, tmp_path: Path, lane: str, migrated_sqlite: Path) -> Any:
    from apitokenproxy.server import start_site

    runners = []
    shutil.copyfile(migrated_sqlite, tmp_path / "live.db")  # as make_world's

    async def make(config: dict[str, Any] | None = None) -> Live:
        upstream = FakeUpstream("jira", JIRA_USERS)
        server = await aiohttp_server(upstream.app())
        raw = deep_merge(
            deep_merge(
                base_config(
                    str(server.make_url("")).rstrip("/"), f"sqlite:///{tmp_path / 'live.db'}"
                ),
                LANES[lane],
            ),
            config or {},
        )
        clock = FakeClock()
        app = create_app(config_from_dict(raw), clock=clock)
        runner = await start_site(app, "127.0.0.1", 0, access_log=False)
        runners.append(runner)
        port = runner.addresses[0][1]
        return Live(port, upstream, app, clock, upstream_port=server.port)

    yield make
    for runner in runners:
        await runner.cleanup()
