"""WebhookChannel against a real local receiver: the body, the signature a receiver
recomputes, and every way a call can fail."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any

import pytest
from aiohttp import web

from apitokenproxy.config import WebhookConfig
from apitokenproxy.errors import NotificationFailed
from apitokenproxy.notify.message import ExpiryWarning
from apitokenproxy.notify.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookChannel

from ..conftest import START_MS, FakeClock
from ..processes import free_port
from .conftest import Hooks

SECRET = "webhook-signing-key"
WARNING = ExpiryWarning(
    token_id=7, description="CI deploys", owner_key="JIRAUSER10100", owner_name="alice",
    valid_until=START_MS + 86_400_000, days=1,
)  # fmt: skip


def channel(url: str, timeout_seconds: float = 10.0) -> WebhookChannel:
    return WebhookChannel(WebhookConfig(url, SECRET, timeout_seconds), FakeClock())


async def test_a_warning_is_one_signed_json_post(hooks: Hooks) -> None:
    await channel(hooks.url).send(WARNING)
    [(headers, body)] = hooks.calls
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {
        "event": "token.expiring", "tokenId": 7, "description": "CI deploys",
        "tokenForUserKey": "JIRAUSER10100", "userName": "alice",
        "validUntil": START_MS + 86_400_000, "daysBefore": 1,
    }  # fmt: skip
    # The receiver's side: seconds since the epoch, and HMAC-SHA256 over "TIMESTAMP.BODY".
    timestamp = headers[TIMESTAMP_HEADER]
    assert timestamp == str(START_MS // 1000)
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    assert hmac.compare_digest(headers[SIGNATURE_HEADER], "sha256=" + expected.hexdigest())


async def test_another_secret_gives_another_signature(hooks: Hooks) -> None:
    await channel(hooks.url).send(WARNING)
    await WebhookChannel(WebhookConfig(hooks.url, "other", 10.0), FakeClock()).send(WARNING)
    (first, body1), (second, body2) = hooks.calls
    assert body1 == body2
    assert first[SIGNATURE_HEADER] != second[SIGNATURE_HEADER]


@pytest.mark.parametrize("status", [200, 202, 204])
async def test_any_2xx_is_delivered(aiohttp_server: Any, status: int) -> None:
    url = await receiver(aiohttp_server, web.Response(status=status))
    await channel(url).send(WARNING)


@pytest.mark.parametrize("status", [301, 400, 404, 500, 503])
async def test_any_other_answer_is_a_failure(aiohttp_server: Any, status: int) -> None:
    url = await receiver(aiohttp_server, web.Response(status=status))
    with pytest.raises(NotificationFailed, match=f"the webhook answered HTTP {status}$"):
        await channel(url).send(WARNING)


@pytest.mark.parametrize("status", [302, 307, 308])
async def test_a_redirect_is_a_failure_and_not_followed(
    aiohttp_server: Any, hooks: Hooks, status: int
) -> None:
    # aiohttp follows redirects by default: a 307 re-sent the signed POST to wherever
    # the receiver pointed. Only the configured URL gets it.
    moved = web.Response(status=status, headers={"Location": hooks.url})
    with pytest.raises(NotificationFailed, match=f"the webhook answered HTTP {status}$"):
        await channel(await receiver(aiohttp_server, moved)).send(WARNING)
    assert hooks.calls == []


async def test_an_unreachable_receiver_is_a_failure() -> None:
    with pytest.raises(NotificationFailed, match="cannot be reached"):
        await channel(f"http://127.0.0.1:{free_port()}/hooks").send(WARNING)


async def test_a_receiver_that_does_not_answer_in_time_is_a_failure(aiohttp_server: Any) -> None:
    answered = asyncio.Event()  # never set: the receiver holds every call

    async def hold(request: web.Request) -> web.Response:
        await answered.wait()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hooks", hold)
    server = await aiohttp_server(app)
    with pytest.raises(NotificationFailed, match="cannot be reached"):
        await channel(str(server.make_url("/hooks")), timeout_seconds=0.05).send(WARNING)


async def receiver(aiohttp_server: Any, answer: web.StreamResponse) -> str:
    """The URL of a receiver that answers every POST with ``answer``."""

    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        return answer

    app = web.Application()
    app.router.add_post("/hooks", handle)
    return str((await aiohttp_server(app)).make_url("/hooks"))
