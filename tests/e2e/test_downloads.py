"""Large answers through a real ``serve`` with two workers, then small ones on the same connections."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ..fakes import basic, bearer, pattern
from ..processes import serve_config, start, stop, wait_for

pytestmark = pytest.mark.slow

API = "/rest/de.resolution.apitokenauth/latest"
SIZE = 24 * 1024 * 1024
ROUNDS = 4
CLIENTS = 4
# Far beyond any answer here, far below the 300 s read timeout the hang waited for.
HANG = 30.0


async def _download(session: aiohttp.ClientSession, url: str, token: str, slow: bool) -> str:
    digest = hashlib.sha256()
    async with session.get(
        f"{url}/_test/download?size={SIZE}&length=1&chunk=262144", headers=bearer(token)
    ) as resp:
        assert resp.status == 200
        read = 0
        async for data in resp.content.iter_chunked(32 * 1024):
            digest.update(data)
            read += len(data)
            if slow and read % (1024 * 1024) < 32 * 1024:
                # A client that reads in bursts: the proxy's buffers fill and drain
                # again and again, to the answer's last byte.
                await asyncio.sleep(0.01)
        return digest.hexdigest()


@pytest.mark.parametrize(
    "lane, api_first",
    [("fast", False), ("fast", True), ("aiohttp", False)],
    ids=["fast", "handed-to-aiohttp-by-the-token-api", "aiohttp"],
)
async def test_small_requests_after_large_downloads_are_answered(
    aiohttp_server: Any, tmp_path: Path, lane: str, api_first: bool
) -> None:
    # Issue 18, item 1: after a large download, an upstream connection could go back
    # to the pool paused for reading, and the next request sent on it hung for the
    # read timeout. Several clients, slow and fast readers, both lanes, two workers.
    config, port = await serve_config(
        aiohttp_server,
        tmp_path,
        listen={"workers": 2},
        proxy={"fast_path": lane == "fast"},
    )
    proc = await start("serve", "--config", str(config))
    try:
        await wait_for(proc, "listening on")
        url = f"http://127.0.0.1:{port}"
        expected = hashlib.sha256(pattern(0, SIZE)).hexdigest()
        async with (
            aiohttp.ClientSession() as admin,
            admin.post(
                f"{url}{API}/user/token",
                json={"tokenDescription": "dl"},
                headers=basic("alice", "alice-pw"),
            ) as resp,
        ):
            assert resp.status == 200
            token = (await resp.json())["plainTextToken"]

        async def client(number: int) -> None:
            # One pooled keep-alive connection per client, as a script's session has.
            connector = aiohttp.TCPConnector(limit=1)
            async with aiohttp.ClientSession(connector=connector) as session:
                if api_first:
                    async with session.get(f"{url}{API}/user/token", headers=bearer(token)) as resp:
                        assert resp.status == 200
                for round_ in range(ROUNDS):
                    slow = (number + round_) % 2 == 0
                    assert await _download(session, url, token, slow) == expected
                    async with asyncio.timeout(HANG):
                        async with session.get(
                            f"{url}/rest/api/2/myself", headers=bearer(token)
                        ) as resp:
                            assert resp.status == 200
                            assert (await resp.json())["name"] == "alice"

        await asyncio.gather(*(client(n) for n in range(CLIENTS)))
    finally:
        print(await stop(proc))  # the proxy's log, shown if the test fails
