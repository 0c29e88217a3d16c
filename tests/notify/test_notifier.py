"""Expiry warnings end to end: a real proxy on each store, a real SMTP server, a
webhook receiver, and a clock the test moves."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from apitokenproxy.app import COMPONENTS, create_app
from apitokenproxy.config import config_from_dict
from apitokenproxy.notify.notifier import ExpiryNotifier
from apitokenproxy.notify.schedule import DAY_MS
from apitokenproxy.server import start_site
from apitokenproxy.tokenapi.service import CreateRequest

from ..conftest import FakeClock, MakeWorld, World, base_config, deep_merge
from ..e2e.test_api import ALICE, BOB, create
from ..fakes import JIRA_USERS, FakeUpstream
from .conftest import Hooks, Inbox

SECRET = "webhook-signing-key"


def notify(inbox: Inbox, hooks: Hooks, **extra: Any) -> dict[str, Any]:
    return {
        "notify": {
            "smtp": {"host": "127.0.0.1", "port": inbox.port, "security": "none",
                     "sender": "tokens@example.com"},
            "webhook": {"url": hooks.url, "secret": SECRET},
            **extra,
        }
    }  # fmt: skip


def notifier_of(world: World) -> ExpiryNotifier:
    notifier = world.client.app[COMPONENTS].notifier
    assert notifier is not None
    return notifier


async def test_owners_are_warned_once_per_threshold_by_email_and_webhook(
    make_world: MakeWorld, inbox: Inbox, hooks: Hooks
) -> None:
    world = await make_world(config=notify(inbox, hooks))
    made = await create(
        world, ALICE, {"tokenDescription": "CI deploy", "tokenValidityTimeInMonths": 1}
    )
    until = made["validUntil"]
    notifier = notifier_of(world)

    world.clock.now = until - 14 * DAY_MS - 1
    await notifier.run_once()
    assert (inbox.messages, hooks.calls) == ([], [])

    world.clock.now = until - 14 * DAY_MS
    await notifier.run_once()
    await notifier.run_once()
    world.clock.advance(DAY_MS)
    await notifier.run_once()
    assert len(inbox.messages) == len(hooks.calls) == 1
    recipients, message = inbox.messages[0]
    assert recipients == ["alice@example.com"]
    assert message["From"] == "tokens@example.com"
    assert 'Your API token "CI deploy" expires on' in message["Subject"]
    body = message.get_content()
    assert f"(id {made['id']})" in body and "in 14 days" in body
    assert made["plainTextToken"] not in message.as_string()

    headers, raw = hooks.calls[0]
    timestamp = headers["X-Apitokenproxy-Timestamp"]
    assert int(timestamp) == world.clock.now // 1000 - DAY_MS // 1000
    expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + raw, hashlib.sha256)
    assert headers["X-Apitokenproxy-Signature"] == "sha256=" + expected.hexdigest()
    assert json.loads(raw) == {
        "event": "token.expiring", "tokenId": made["id"], "description": "CI deploy",
        "tokenForUserKey": "JIRAUSER10100", "userName": "alice", "validUntil": until,
        "daysBefore": 14,
    }  # fmt: skip
    assert made["plainTextToken"].encode() not in raw

    world.clock.now = until - 3 * DAY_MS
    await notifier.run_once()
    world.clock.now = until - 1
    await notifier.run_once()
    world.clock.now = until + DAY_MS
    await notifier.run_once()
    assert [json.loads(raw)["daysBefore"] for _, raw in hooks.calls] == [14, 3]
    assert len(inbox.messages) == 2
    assert "in 3 days" in inbox.messages[1][1].get_content()
    assert notifier.counts == {"email.sent": 2, "webhook.sent": 2}


async def test_a_token_made_late_gets_only_the_urgent_warning(
    make_world: MakeWorld, inbox: Inbox, hooks: Hooks
) -> None:
    world = await make_world(config=notify(inbox, hooks))
    made = await create(world, BOB, {"tokenDescription": "t", "tokenValidityTimeInMonths": 1})
    world.clock.now = made["validUntil"] - 2 * DAY_MS
    await notifier_of(world).run_once()
    assert [json.loads(raw)["daysBefore"] for _, raw in hooks.calls] == [3]
    assert [r for r, _ in inbox.messages] == [["bob@example.com"]]


async def test_failed_sends_are_retried_with_back_off_and_counted(
    make_world: MakeWorld, inbox: Inbox, hooks: Hooks
) -> None:
    hooks.fail = 2
    world = await make_world(config=notify(inbox, hooks, retry_seconds=60, max_attempts=5))
    made = await create(world, ALICE, {"tokenDescription": "t", "tokenValidityTimeInMonths": 1})
    notifier = notifier_of(world)
    world.clock.now = made["validUntil"] - 10 * DAY_MS
    assert await notifier.run_once() is True  # the webhook failed; a retry waits
    world.clock.advance(59_999)
    await notifier.run_once()
    assert len(hooks.calls) == 1  # not before the back-off ends
    world.clock.advance(1)
    await notifier.run_once()
    assert len(hooks.calls) == 2
    world.clock.advance(119_999)  # the second back-off is twice as long
    await notifier.run_once()
    assert len(hooks.calls) == 2
    world.clock.advance(1)
    assert await notifier.run_once() is False
    world.clock.advance(DAY_MS)
    await notifier.run_once()
    assert len(hooks.calls) == 3
    assert len(inbox.messages) == 1  # e-mail went out the first time, and only then
    assert notifier.counts == {"email.sent": 1, "webhook.failed": 2, "webhook.sent": 1}


async def test_a_warning_is_given_up_after_its_attempts(
    make_world: MakeWorld, inbox: Inbox, hooks: Hooks
) -> None:
    config = notify(inbox, hooks, retry_seconds=1, max_attempts=2)
    config["notify"]["smtp"]["port"] = 9  # nothing listens there
    world = await make_world(config=config)
    made = await create(world, ALICE, {"tokenDescription": "t", "tokenValidityTimeInMonths": 1})
    notifier = notifier_of(world)
    world.clock.now = made["validUntil"] - 10 * DAY_MS
    for _ in range(4):
        await notifier.run_once()
        world.clock.advance(60_000)
    assert notifier.counts == {"email.failed": 2, "email.gave_up": 1, "webhook.sent": 1}


async def test_an_owner_without_an_address_is_a_failed_email(
    make_world: MakeWorld, inbox: Inbox, hooks: Hooks
) -> None:
    world = await make_world("confluence", config=notify(inbox, hooks, max_attempts=1))
    world.upstream.hide_emails = True
    made = await create(world, ALICE, {"tokenDescription": "t", "tokenValidityTimeInMonths": 1})
    world.clock.now = made["validUntil"] - DAY_MS
    notifier = notifier_of(world)
    await notifier.run_once()
    assert notifier.counts == {"email.failed": 1, "email.gave_up": 1, "webhook.sent": 1}
    assert inbox.messages == []


async def test_no_notifier_without_a_channel(jira: World) -> None:
    assert jira.client.app[COMPONENTS].notifier is None


@pytest.mark.parametrize("lane", ["fast"])
async def test_two_instances_on_one_postgres_send_each_warning_once(
    aiohttp_server: Any, postgres_url: str, inbox: Inbox, hooks: Hooks, lane: str
) -> None:
    """Each instance scans in its own background task, as often as it can; every
    warning still goes out once."""
    upstream = await aiohttp_server(FakeUpstream("jira", JIRA_USERS).app())
    raw = deep_merge(
        base_config(str(upstream.make_url("")).rstrip("/"), postgres_url),
        notify(inbox, hooks, interval_seconds=0.02),
    )
    config = config_from_dict(raw)
    clocks = [FakeClock(), FakeClock()]
    runners = []
    try:
        for clock in clocks:
            runners.append(
                await start_site(create_app(config, clock=clock), "127.0.0.1", 0, access_log=False)
            )
        store = runners[0].app[COMPONENTS].store
        # Two tokens each for alice and bob, made through the first instance's service.
        service = runners[0].app[COMPONENTS].token_api.service
        authenticator = runners[0].app[COMPONENTS].token_api.authenticator
        made = []
        for name, password in (("alice", "alice-pw"), ("bob", "bob-pw")):
            caller = await authenticator.caller([_basic(name, password)], "127.0.0.1", "POST")
            for description in ("first", "second"):
                made.append(await service.create(caller, CreateRequest(description, months=1)))
        assert len(await store.expiring(0, 2**62)) == 4
        until = made[0].record.valid_until
        assert until is not None
        for clock in clocks:
            clock.now = until - 5 * DAY_MS
        async with asyncio.timeout(10):
            await hooks.received(4)
            await inbox.received(4)
        await asyncio.sleep(0.5)  # both instances scan many more times
    finally:
        for runner in runners:
            await runner.cleanup()
    assert len(hooks.calls) == len(inbox.messages) == 4
    assert sorted(json.loads(raw)["tokenId"] for _, raw in hooks.calls) == sorted(
        m.record.id for m in made
    )
    assert sorted(r[0] for r, _ in inbox.messages) == [
        "alice@example.com", "alice@example.com", "bob@example.com", "bob@example.com"]  # fmt: skip


def _basic(name: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()
