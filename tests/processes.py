"""Running apitokenproxy as a real process, for tests that need one."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import yaml


def write_config(tmp_path: Path, upstream: str = "http://127.0.0.1:9", **extra: Any) -> Path:
    data = {
        "upstream": {"url": upstream},
        "store": {"url": f"sqlite:///{tmp_path / 'tokens.db'}"},
        **extra,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start(*args: str, own_group: bool = False) -> asyncio.subprocess.Process:
    """``python -m apitokenproxy ARGS``; ``own_group`` starts it in a session and
    process group of its own, as systemd and docker do (``os.killpg`` reaches the
    whole tree, this test left out)."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "apitokenproxy", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=own_group,
    )  # fmt: skip


async def wait_for(proc: asyncio.subprocess.Process, marker: str) -> str:
    assert proc.stdout is not None
    seen = ""
    try:
        async with asyncio.timeout(20):
            while marker not in seen:
                line = await proc.stdout.readline()
                if not line:
                    raise AssertionError(f"process ended before {marker!r}:\n{seen}")
                seen += line.decode()
    except TimeoutError:
        raise AssertionError(f"no {marker!r} within 20 s:\n{seen}") from None
    return seen


async def stop(proc: asyncio.subprocess.Process) -> str:
    proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(20):
        out, _ = await proc.communicate()
    return out.decode()


async def serve_config(aiohttp_server: Any, tmp_path: Path, **extra: Any) -> tuple[Path, int]:
    """A config for ``serve`` in front of a fresh fake Jira, on a free port; and the port."""
    from .fakes import JIRA_USERS, FakeUpstream

    upstream = await aiohttp_server(FakeUpstream("jira", JIRA_USERS).app())
    port = free_port()
    # One process unless a test asks for more: a test that SIGKILLs the server
    # must not leave worker processes behind holding the port.
    listen = {"host": "127.0.0.1", "port": port, "workers": 1, **extra.pop("listen", {})}
    return write_config(tmp_path, str(upstream.make_url("")), listen=listen, **extra), port
