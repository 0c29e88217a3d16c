"""Reading a raw client connection to the proxy, for tests that need one."""

from __future__ import annotations

import asyncio


async def closes_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Whether the peer closes the connection within ``seconds``, whatever it sends first
    (an answer, the rest of one, nothing)."""
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass  # cut rather than closed: closed all the same
    return True
