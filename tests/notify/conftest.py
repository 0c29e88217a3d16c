"""A real SMTP server (aiosmtpd) and a webhook receiver, both in the test's event loop."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Inbox:
    """Every message the SMTP server accepted, with its envelope recipients."""

    port: int = 0
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def received(self, count: int) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: len(self.messages) >= count)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        async with self.changed:
            self.messages.append((list(envelope.rcpt_tos), message))
            self.changed.notify_all()
        return "250 OK"


@pytest.fixture
async def inbox() -> AsyncIterator[Inbox]:
    box = Inbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(box), "127.0.0.1", 0)
    box.port = server.sockets[0].getsockname()[1]
    yield box
    server.close()
    await server.wait_closed()


@dataclass
class Hooks:
    """Webhook calls received; the first ``fail`` calls are answered 500."""

    url: str = ""
    calls: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    fail: int = 0
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def received(self, count: int) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: len(self.calls) >= count)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        async with self.changed:
            self.calls.append((dict(request.headers), body))
            self.changed.notify_all()
        if len(self.calls) <= self.fail:
            return web.Response(status=500)
        return web.Response(status=204)


@pytest.fixture
async def hooks(aiohttp_server: Any) -> Hooks:
    receiver = Hooks()
    app = web.Application()
    app.router.add_post("/hooks/tokens", receiver.handle)
    server = await aiohttp_server(app)
    receiver.url = str(server.make_url("/hooks/tokens"))
    return receiver
