"""A cheap flood of bad tokens from many addresses must not starve the first uses of good ones.

Issue 18, item 11: 64 addresses x 4 keep-alive connections of well-formed bad
tokens got 8 of 8 first uses of valid tokens a 503 Busy, because every
throttled address kept one argon2 check in the hasher's queue. Here the same
on a small scale: one argon2 thread, four pending checks, two failures allowed
per address, and twelve flooding addresses (every client socket bound to its
own address in 127.0.0.0/8, all of it local on Linux). ``bench/flood.py`` runs
it at full size against the proxy as users run it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from itertools import cycle

import aiohttp
import pytest

from apitokenproxy.auth.tokens import format_token, parse_token

from ..conftest import MakeWorld, World
from ..fakes import basic, bearer

API = "/rest/de.resolution.apitokenauth/latest"
MYSELF = "/rest/api/2/myself"
SOURCES = [f"127.0.1.{i}" for i in range(1, 13)]
PROBE = "127.0.2.1"
FLOOD_CONFIG = {
    "auth": {
        "hash_workers": 1,
        "max_pending_verifications": 4,
        "throttle": {"max_failures": 2},
    }
}


async def new_tokens(world: World, count: int) -> list[str]:
    tokens = []
    for _ in range(count):
        resp = await world.client.post(
            f"{API}/user/token", json={"tokenDescription": "t"}, headers=basic("alice", "alice-pw")
        )
        assert resp.status == 200, await resp.text()
        tokens.append((await resp.json())["plainTextToken"])
    return tokens


def session_from(world: World, address: str, connections: int = 1) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        str(world.client.make_url("")),
        connector=aiohttp.TCPConnector(limit=connections, local_addr=(address, 0)),
    )


async def status_of(http: aiohttp.ClientSession, headers: dict[str, str]) -> int:
    async with http.get(MYSELF, headers=headers) as resp:
        await resp.read()
        return resp.status


@pytest.mark.slow  # a few seconds of flood on each lane and store
@pytest.mark.real_argon2  # the hasher's queue fills only as fast as argon2 is slow
async def test_a_flood_of_bad_tokens_does_not_starve_first_uses(make_world: MakeWorld) -> None:
    world = await make_world(config=FLOOD_CONFIG)
    valid = await new_tokens(world, 7)
    # Well-formed bad tokens: ids no token has, and the valid tokens' own ids
    # with wrong secrets (argon2 must judge those until the row is known).
    real_ids = [parse_token(token).token_id for token in valid]
    bad = cycle(
        [bearer(format_token(10_000 + i, f"{i:0>32}")) for i in range(50)]
        + [bearer(format_token(real_ids[i % 7], f"{i:x>32}")) for i in range(50)]
    )
    answers: Counter[int] = Counter()
    throttled: set[str] = set()
    all_throttled = asyncio.Event()
    stop = asyncio.Event()

    async def flood(address: str) -> None:
        async with session_from(world, address, 2) as http:

            async def connection() -> None:
                while not stop.is_set():
                    status = await status_of(http, next(bad))
                    answers[status] += 1
                    if status == 429:
                        throttled.add(address)
                        if len(throttled) == len(SOURCES):
                            all_throttled.set()

            await asyncio.gather(connection(), connection())

    flooding = asyncio.gather(*(flood(address) for address in SOURCES))
    try:
        await all_throttled.wait()
        first_uses: list[int] = []
        for token in valid[:6]:  # each a new client on a new connection
            async with session_from(world, PROBE) as http:
                first_uses.append(await status_of(http, bearer(token)))
        # A correct token from a throttled, flooding address is still accepted.
        async with session_from(world, SOURCES[0]) as http:
            from_flooder = await status_of(http, bearer(valid[6]))
    finally:
        stop.set()
        with contextlib.suppress(aiohttp.ClientError):
            await flooding
    assert first_uses == [200] * 6, answers
    assert from_flooder == 200, answers
    assert answers[429] > 0 and set(answers) <= {401, 429, 503}, answers
