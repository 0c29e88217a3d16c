"""Waiting for something to happen, for tests that cannot be told when it has."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

# Long enough never to fail a correct test on a loaded machine: a guard against
# hanging, not a measure of how fast anything is.
PATIENCE_SECONDS = 20.0


async def until(
    condition: Callable[[], bool | Awaitable[bool]],
    what: str = "the condition held",
    *,
    every: float = 0.005,
) -> None:
    """Return as soon as ``condition`` (a function or coroutine function) holds,
    asking every ``every`` seconds; fail, saying ``what`` never happened, if it
    does not hold within ``PATIENCE_SECONDS``."""
    try:
        async with asyncio.timeout(PATIENCE_SECONDS):
            while True:
                answer = condition()
                if await answer if inspect.isawaitable(answer) else answer:
                    return
                await asyncio.sleep(every)
    except TimeoutError:
        raise AssertionError(f"not within {PATIENCE_SECONDS} s: {what}") from None
