"""SIGHUP on a real ``serve``: the client timeouts change on both lanes at once."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..connections import closes_within
from ..processes import serve_config, start, stop, wait_for

pytestmark = pytest.mark.slow  # real processes

BEFORE = {"header_timeout_seconds": 30, "keepalive_timeout_seconds": 75}
AFTER = {"header_timeout_seconds": 1, "keepalive_timeout_seconds": 1}
# Far longer than the new timeouts, far shorter than the old ones.
WITHIN = 10.0


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast", "aiohttp"])
async def test_sighup_changes_the_client_timeouts_of_both_lanes(
    aiohttp_server: Any, tmp_path: Path, fast_path: bool
) -> None:
    # Issue 18, item 6: a reload logged both timeouts as applied, but only the fast
    # lane used the new values; connections aiohttp served kept the old ones.
    config, port = await serve_config(
        aiohttp_server, tmp_path, listen=BEFORE, proxy={"fast_path": fast_path}
    )
    proc = await start("serve", "--config", str(config))
    try:
        await wait_for(proc, "listening on")
        data = yaml.safe_load(config.read_text())
        data["listen"].update(AFTER)
        config.write_text(yaml.safe_dump(data))
        proc.send_signal(signal.SIGHUP)
        log = await wait_for(proc, "SIGHUP: applied")
        assert "listen.header_timeout_seconds, listen.keepalive_timeout_seconds" in log

        async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            return await asyncio.open_connection("127.0.0.1", port)

        # A request head that never ends (slow-loris): cut after the new header timeout.
        slow, slow_writer = await connect()
        slow_writer.write(b"GET /rest/api/2/issue/X-1 HTTP/1.1\r\nHost: j\r\n")
        # An idle keep-alive connection after a data-path request, and after one
        # the fast lane hands to aiohttp (the proxy's own health path).
        served = []
        for path in ("/rest/api/2/issue/X-1", "/__apitokenproxy/health"):
            reader, writer = await connect()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: j\r\n\r\n".encode())
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
            served.append((path, reader, writer))
        results = await asyncio.gather(
            closes_within(slow, WITHIN), *(closes_within(r, WITHIN) for _, r, _ in served)
        )
        assert results == [True, True, True], list(
            zip(["incomplete head", *(p for p, _, _ in served)], results, strict=True)
        )
        for writer in (slow_writer, *(w for _, _, w in served)):
            writer.close()
    finally:
        await stop(proc)
