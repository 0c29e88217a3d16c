"""Argon2 hashing: correct answers, and a bounded queue that refuses rather than piles up."""

from __future__ import annotations

import asyncio
import json

import pytest

from apitokenproxy.auth.hashing import SecretHasher
from apitokenproxy.errors import Busy

pytestmark = pytest.mark.real_argon2  # this is argon2 at its production cost


async def test_hash_and_verify() -> None:
    hasher = SecretHasher(workers=1)
    try:
        stored = await hasher.hash("secret-one")
        assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        assert await hasher.verify(stored, "secret-one") is True
        assert await hasher.verify(stored, "secret-two") is False
        assert await hasher.verify("not a hash", "secret-one") is False
    finally:
        hasher.close()


async def test_a_flood_is_refused_beyond_the_bound_and_the_loop_stays_responsive() -> None:
    hasher = SecretHasher(workers=1, max_pending=4)
    try:
        stored = await hasher.hash("s")
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        tick_task = asyncio.create_task(ticker())
        results = await asyncio.gather(
            *(hasher.verify(stored, "wrong") for _ in range(40)), return_exceptions=True
        )
        tick_task.cancel()
        busy = [r for r in results if isinstance(r, Busy)]
        answered = [r for r in results if r is False]
        assert len(answered) == 4
        assert len(busy) == 36
        assert ticks > 0  # the event loop ran while argon2 worked in its thread
    finally:
        hasher.close()


async def test_busy_is_a_503_with_retry_after() -> None:
    # What a client gets when verifications queue up: the answer the hasher's
    # refusal becomes, through the one error shape.
    hasher = SecretHasher(workers=1, max_pending=1)
    try:
        slow = asyncio.ensure_future(hasher.hash("first"))
        await asyncio.sleep(0)
        with pytest.raises(Busy) as refused:
            await asyncio.gather(*(hasher.verify("$argon2id$v=19$x", "y") for _ in range(3)))
        await slow
    finally:
        hasher.close()
    response = refused.value.to_response()
    assert (response.status, response.headers["Retry-After"]) == (503, "1")
    assert json.loads(response.body)["error"] == "busy"  # type: ignore[arg-type]
