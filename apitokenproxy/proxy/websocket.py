"""WebSockets relayed between the client and the upstream, message by message.

The forwarder (``forwarder.py``) opens the upstream's side with aiohttp's client
after admission and the header rewrite, and answers the client's upgrade; from
then on ``relay`` passes text and binary messages both ways until either side
closes, and passes that side's close code on.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
from aiohttp import WSMsgType, web


async def relay(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    async def pump(
        source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
        target: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    ) -> None:
        async for message in source:
            if message.type == WSMsgType.TEXT:
                await target.send_str(message.data)
            elif message.type == WSMsgType.BINARY:
                await target.send_bytes(message.data)
            elif message.type == WSMsgType.ERROR:
                break
        # The source closed: pass its close code on.
        await target.close(code=source.close_code or 1000)

    tasks = [
        asyncio.create_task(pump(client, upstream)),
        asyncio.create_task(pump(upstream, client)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, aiohttp.ClientError):
                await task
