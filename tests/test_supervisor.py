"""The supervisor's decisions about workers and signals, without starting any;
the store it prepares before them."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from apitokenproxy.config import StoreConfig, config_from_dict
from apitokenproxy.errors import StartupError
from apitokenproxy.store import schema
from apitokenproxy.supervisor import (
    EXIT_STARTUP,
    MAX_BACKOFF,
    MAX_RESTARTS,
    Supervisor,
    prepare_store,
    worker_count,
)


@dataclass
class Ended:
    """What the supervisor reads of a process that has ended."""

    exitcode: int
    pid: int = 4242

    def is_alive(self) -> bool:
        return False


def supervisor() -> Supervisor:
    return Supervisor(config_from_dict({"upstream": {"url": "http://j"}}), None, 2, None)


def test_a_dead_worker_is_replaced_after_a_growing_back_off() -> None:
    sup = supervisor()
    waits = []
    for _ in range(MAX_RESTARTS):
        before = time.monotonic()
        sup._ended(0, Ended(-9))  # type: ignore[arg-type]
        waits.append(round(sup._due.pop(0) - before))
    assert sup._failure is None
    assert waits == [min(MAX_BACKOFF, 2**i) for i in range(MAX_RESTARTS)]  # 1, 2, 4, 8, 16 s


def test_workers_that_keep_dying_make_the_parent_give_up() -> None:
    sup = supervisor()
    for _ in range(MAX_RESTARTS + 1):
        sup._ended(0, Ended(1))  # type: ignore[arg-type]
    assert sup._failure is not None and "giving up" in sup._failure
    assert sup._stopping and not sup._due


def test_a_worker_that_cannot_start_stops_them_all() -> None:
    sup = supervisor()
    sup._ended(1, Ended(EXIT_STARTUP))  # type: ignore[arg-type]
    assert sup._failure is not None and sup._stopping
    with pytest.raises(StartupError):
        sup.run_finished()


@pytest.mark.parametrize(("configured", "expected"), [(3, 3), (1, 1)])
def test_worker_count(configured: int, expected: int) -> None:
    assert worker_count(configured) == expected
    assert worker_count(0) >= 1


async def _schema_version(store_url: str) -> tuple[int, int]:
    """The version the store is at, and the latest there is."""
    if store_url.startswith("sqlite:///"):
        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
        return int(version), len(schema.migrations(schema.SQLITE))
    import asyncpg

    conn = await asyncpg.connect(store_url)
    try:
        version = await conn.fetchval("SELECT max(version) FROM schema_version")
    finally:
        await conn.close()
    return int(version), len(schema.migrations(schema.POSTGRES))


def test_the_parent_creates_and_migrates_the_store_before_any_worker(store_url: str) -> None:
    # Issue 18, item 2: workers setting up a new SQLite file together collided.
    prepare_store(StoreConfig(url=store_url))
    version, latest = asyncio.run(_schema_version(store_url))
    assert version == latest
    prepare_store(StoreConfig(url=store_url))  # again: nothing to do, no error


def test_a_store_the_parent_cannot_open_is_a_startup_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StartupError, match="cannot create the folder"):
        prepare_store(StoreConfig(url=f"sqlite:///{tmp_path / 'file' / 'tokens.db'}"))


@dataclass
class Running:
    """A worker process as the supervisor sees it, alive."""

    pid: int

    def is_alive(self) -> bool:
        return True


def test_a_stop_signal_is_passed_on_to_each_worker_once_and_nothing_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Issue 18, item 3: the group's SIGTERM reaches the workers too; each
    # further one passed on used to kill a worker whose shutdown was under way.
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append((pid, sig)))
    sup = supervisor()
    sup._workers = {0: Running(10), 1: Running(11)}  # type: ignore[dict-item]
    sup._stop(signal.SIGTERM, None)
    sup._stop(signal.SIGINT, None)
    sup._stop(signal.SIGTERM, None)
    sup._hangup(signal.SIGHUP, None)  # nothing to reload any more
    assert sent == [(10, signal.SIGTERM), (11, signal.SIGTERM)]


def test_a_worker_started_as_the_stop_came_is_told_too(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append((pid, sig)))

    class Spawned(Running):
        def start(self) -> None:
            sup._stop(signal.SIGTERM, None)  # the signal lands while it starts

    sup = supervisor()
    monkeypatch.setattr(sup._context, "Process", lambda **_: Spawned(12))
    sup._start(0)
    assert sent == [(12, signal.SIGTERM)]


@pytest.mark.parametrize(
    ("exitcode", "warned"),
    [(0, False), (-signal.SIGTERM, False), (-signal.SIGKILL, True), (1, True)],
)
def test_a_worker_cut_short_while_stopping_is_reported(
    caplog: pytest.LogCaptureFixture, exitcode: int, warned: bool
) -> None:
    # SIGTERM ends a worker only before it serves or once its shutdown is done.
    sup = supervisor()
    sup._stopping = True
    with caplog.at_level(logging.WARNING, logger="apitokenproxy"):
        sup._ended(0, Ended(exitcode))  # type: ignore[arg-type]
    assert ("while stopping" in caplog.text) is warned
    assert not sup._due and sup._failure is None
