"""Faults survived with nothing lost: a sick store, a killed process, a minute of mixed load."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from apitokenproxy.app import COMPONENTS
from apitokenproxy.auth.tokens import format_token

from ..conftest import MakeWorld, World
from ..fakes import basic, bearer
from ..processes import serve_config, start, stop, wait_for

# Real processes, SIGKILL and a minute-long soak: run with --slow (CI does).
pytestmark = pytest.mark.slow

API = "/rest/de.resolution.apitokenauth/latest"
ALICE = basic("alice", "alice-pw")
ISSUE = "/rest/api/2/issue/X-1"


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """These faults are SQLite's own (file locks, a read-only or full file)."""
    return f"sqlite:///{tmp_path / 'tokens.db'}"


def _read_only(world: World, db: Path) -> Callable[[], Any]:
    # The store's own connection refuses writes, as on a read-only mount.
    conn = world.client.app[COMPONENTS].store._conn  # type: ignore[attr-defined]

    async def undo() -> None:
        await conn.execute("PRAGMA query_only = 0")

    async def apply() -> Callable[[], Any]:
        await conn.execute("PRAGMA query_only = 1")
        return undo

    return apply


def _full(world: World, db: Path) -> Callable[[], Any]:
    # No page may be added to the file: what SQLite reports on a full disk.
    conn = world.client.app[COMPONENTS].store._conn  # type: ignore[attr-defined]

    async def undo() -> None:
        await conn.execute("PRAGMA max_page_count = 1073741823")

    async def apply() -> Callable[[], Any]:
        async with conn.execute("PRAGMA page_count") as cur:
            pages = (await cur.fetchone())[0]
        await conn.execute(f"PRAGMA max_page_count = {pages}")
        return undo

    return apply


def _locked(world: World, db: Path) -> Callable[[], Any]:
    # Another process holds the write lock for longer than the busy timeout.
    other = sqlite3.connect(db, isolation_level=None)

    async def undo() -> None:
        other.execute("ROLLBACK")
        other.close()

    async def apply() -> Callable[[], Any]:
        other.execute("BEGIN EXCLUSIVE")
        return undo

    return apply


@pytest.mark.parametrize(
    ("fault", "message"),
    [(_read_only, "read-only"), (_full, "full"), (_locked, "locked")],
    ids=["read-only", "disk-full", "locked"],
)
async def test_a_sick_store_fails_writes_cleanly_and_cached_tokens_keep_working(
    make_world: MakeWorld, tmp_path: Path, fault: Any, message: str
) -> None:
    world = await make_world(config={"store": {"busy_timeout_seconds": 0.2}})
    db = tmp_path / "tokens.db"
    cached = await (
        await world.client.post(f"{API}/user/token", json={"tokenDescription": "a"}, headers=ALICE)
    ).json()
    assert (await world.client.get(ISSUE, headers=bearer(cached["plainTextToken"]))).status == 200
    # Bulk up the file so a "full" store cannot absorb even one more row in spare pages.
    for i in range(40):
        resp = await world.client.post(
            f"{API}/user/token", json={"tokenDescription": "x" * 250 + str(i)}, headers=ALICE
        )
        assert resp.status == 200
    before = (await world.client.app[COMPONENTS].store.find_by_expiry(None, 0, 1000)).total

    undo = await fault(world, db)()
    accepted = 0
    try:
        # A full file may still fit a row or two in its last page; then it fails.
        for _ in range(30):
            resp = await world.client.post(
                f"{API}/user/token", json={"tokenDescription": "y" * 255}, headers=ALICE
            )
            body = await resp.json()
            if resp.status != 200:
                break
            accepted += 1
        assert resp.status == 503, body
        assert message in body["message"]
        assert accepted <= (20 if message == "full" else 0)
        if message != "full":  # deleting on a full disk may rightly succeed: it frees space
            resp = await world.client.delete(f"{API}/user/token/{cached['id']}", headers=ALICE)
            assert resp.status == 503
        # Tokens already verified keep working.
        assert (
            await world.client.get(ISSUE, headers=bearer(cached["plainTextToken"]))
        ).status == 200
    finally:
        await undo()

    page = await world.client.app[COMPONENTS].store.find_by_expiry(None, 0, 1000)
    assert page.total == before + accepted  # nothing half-written
    assert cached["id"] in {r.id for r in page.items}
    with sqlite3.connect(db) as check:
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    resp = await world.client.post(
        f"{API}/user/token", json={"tokenDescription": "z"}, headers=ALICE
    )
    assert resp.status == 200


async def test_sigkill_under_load_loses_nothing_that_was_reported(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    config, port = await serve_config(
        aiohttp_server, tmp_path, auth={"throttle": {"max_failures": 100000}}
    )
    created: dict[int, str] = {}
    deleted: set[int] = set()
    # A delete under way when the process dies may or may not have been written:
    # its client never heard. Only what was reported is held to account.
    unanswered: set[int] = set()
    base = f"http://127.0.0.1:{port}"

    enough = asyncio.Event()

    async def churn(http: aiohttp.ClientSession) -> None:
        while True:
            async with http.post(
                f"{API}/user/token", json={"tokenDescription": "k"}, headers=ALICE
            ) as resp:
                if resp.status == 200:
                    made = await resp.json()
                    created[made["id"]] = made["plainTextToken"]
            victims = [i for i in created if i not in deleted]
            if victims and random.random() < 0.4:
                victim = random.choice(victims)
                unanswered.add(victim)
                async with http.delete(f"{API}/user/token/{victim}", headers=ALICE) as resp:
                    if resp.status == 204:
                        deleted.add(victim)
                unanswered.discard(victim)
            if len(created) >= 10 and deleted:
                enough.set()

    proc = await start("serve", "--config", str(config))
    await wait_for(proc, "listening on")
    async with aiohttp.ClientSession(base) as http:
        workers = [asyncio.create_task(churn(http)) for _ in range(8)]
        # Enough done to judge (however busy the machine), then at least 0.5 s more.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(enough.wait(), 20)
        await asyncio.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)  # no shutdown, no flush, mid-write
        await proc.wait()
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    assert len(created) >= 10 and deleted

    proc = await start("serve", "--config", str(config))
    try:
        await wait_for(proc, "listening on")
        async with aiohttp.ClientSession(base) as http:
            for token_id, token in created.items():
                async with http.get(ISSUE, headers=bearer(token)) as resp:
                    if token_id in unanswered:
                        assert resp.status in (200, 401), (token_id, resp.status)
                        continue
                    expected = 401 if token_id in deleted else 200
                    assert resp.status == expected, (token_id, resp.status)
            assert len(unanswered) <= 8  # at most one a client
    finally:
        await stop(proc)
    with sqlite3.connect(tmp_path / "tokens.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


SOAK_SECONDS = float(os.environ.get("APITOKENPROXY_SOAK_SECONDS", "10"))


async def test_mixed_load_keeps_valid_tokens_working_and_resources_flat(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    """Valid tokens, bad tokens and anonymous calls for a while (60 s in CI)."""
    config, port = await serve_config(
        aiohttp_server,
        tmp_path,
        auth={"throttle": {"max_failures": 1_000_000}},
        logging={"access_log": False},
    )
    proc = await start("serve", "--config", str(config))
    outcomes: dict[str, dict[int, int]] = {"valid": {}, "bad": {}, "anonymous": {}}
    try:
        await wait_for(proc, "listening on")
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            tokens = []
            for _ in range(5):
                async with http.post(
                    f"{API}/user/token", json={"tokenDescription": "soak"}, headers=ALICE
                ) as resp:
                    tokens.append((await resp.json())["plainTextToken"])

            async def client(kind: str, stop_at: float) -> None:
                loop = asyncio.get_running_loop()
                n = 0
                while loop.time() < stop_at:
                    n += 1
                    if kind == "valid":
                        headers = bearer(random.choice(tokens))
                    elif kind == "bad":
                        headers = bearer(format_token(10_000 + n, f"{n:032d}"))
                    else:
                        headers = {}
                    async with http.get(ISSUE, headers=headers) as resp:
                        await resp.read()
                        counts = outcomes[kind]
                        counts[resp.status] = counts.get(resp.status, 0) + 1

            loop = asyncio.get_running_loop()
            warm = loop.time() + 2
            await asyncio.gather(*(client(k, warm) for k in ("valid", "valid", "bad", "anonymous")))
            rss_start, files_start = _rss_kib(proc.pid), _open_files(proc.pid)
            end = loop.time() + SOAK_SECONDS
            await asyncio.gather(
                *(client(k, end) for k in ("valid", "valid", "valid", "bad", "bad", "anonymous"))
            )
            rss_end, files_end = _rss_kib(proc.pid), _open_files(proc.pid)
    finally:
        out = await stop(proc)
    assert proc.returncode == 0, out[-2000:]
    assert set(outcomes["valid"]) == {200}, outcomes
    assert set(outcomes["anonymous"]) == {200}, outcomes
    assert set(outcomes["bad"]) <= {401, 503}, outcomes
    assert sum(outcomes["valid"].values()) > 100
    assert rss_end - rss_start < 20 * 1024, (rss_start, rss_end)
    assert files_end - files_start <= 5, (files_start, files_end)
