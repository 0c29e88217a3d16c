"""An IPv4 address written as IPv6 (``::ffff:10.0.0.5``) is that IPv4 address for every
rule that asks where a request comes from: trusted proxies, ``auth.allowed_networks``
and a token's allowed addresses. On both lanes and both stores."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from apitokenproxy.app import COMPONENTS
from apitokenproxy.proxy.fastlane import FrontConnection

from ..conftest import MakeWorld, World
from ..fakes import bearer
from .test_api import ALICE

ISSUE = "/rest/api/2/issue/TEST-1"
API = "/rest/de.resolution.apitokenauth/latest"
BUILD_NETWORKS = {"auth": {"allowed_networks": ["10.0.0.0/8"]}}


@pytest.fixture
async def dual_stack(make_world: MakeWorld) -> AsyncIterator[tuple[World, int]]:
    """A world also listening on a dual-stack IPv6 socket (``::``, IPV6_V6ONLY off), as a
    socket handed over by systemd or a container runtime may be: an IPv4 peer there is
    seen as ``::ffff:127.0.0.1``. The world's own runner serves it, in its lane."""
    world = await make_world(
        config={**BUILD_NETWORKS, "proxy": {"trusted_proxies": ["127.0.0.1/32"]}}
    )
    server = world.client.server
    runner = server.runner
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", 0))
    sock.listen()
    sock.setblocking(False)
    port = sock.getsockname()[1]
    closing: asyncio.Server | None = None
    if world.config.proxy.fast_path:
        lane, fallback = server.app[COMPONENTS].fast_lane, runner.server
        closing = await asyncio.get_running_loop().create_server(
            lambda: FrontConnection(lane, fallback), sock=sock
        )
    else:
        await web.SockSite(runner, sock).start()
    yield world, port
    if closing is not None:
        closing.close()
        await closing.wait_closed()


async def test_a_trusted_proxy_seen_on_a_mapped_address_is_believed(
    dual_stack: tuple[World, int],
) -> None:
    """127.0.0.1 is trusted; a front proxy on it, seen as ::ffff:127.0.0.1, says the
    client is 10.1.2.3, inside auth.allowed_networks."""
    world, port = dual_stack
    headers = {**ALICE, "X-Forwarded-For": "10.1.2.3", "Connection": "close"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}{ISSUE}", headers=headers) as resp,
    ):
        assert resp.status == 200, await resp.text()
    [seen] = [r for r in world.upstream.received if r.path_qs == ISSUE]
    assert dict(seen.headers)["X-Forwarded-For"] == "10.1.2.3, ::ffff:127.0.0.1"


@pytest.mark.parametrize(
    ("forwarded_for", "status"),
    [
        # The inner balancer (10.0.0.4, trusted) wrote the outer one's hop as IPv6: it is
        # skipped like any trusted hop, so the client is the address left of it.
        ("192.0.2.9, ::ffff:10.0.0.4", 403),
        ("10.1.2.3, ::ffff:10.0.0.4", 200),
        ("::ffff:10.1.2.3", 200),
        ("::ffff:192.0.2.9", 403),
    ],
)
async def test_a_mapped_trusted_hop_is_skipped_not_taken_for_the_client(
    make_world: MakeWorld, forwarded_for: str, status: int
) -> None:
    trusted = {"proxy": {"trusted_proxies": ["127.0.0.1/32", "10.0.0.0/24"]}}
    world = await make_world(config={**BUILD_NETWORKS, **trusted})
    resp = await world.client.get(ISSUE, headers={**ALICE, "X-Forwarded-For": forwarded_for})
    assert resp.status == status, await resp.text()


async def test_a_token_network_written_as_mapped_ipv6_holds_its_ipv4_clients(
    make_world: MakeWorld,
) -> None:
    world = await make_world(config={"proxy": {"trusted_proxies": ["127.0.0.1/32"]}})
    resp = await world.client.post(
        f"{API}/user/token",
        json={"tokenDescription": "ci", "allowedAddresses": ["::ffff:10.0.0.0/104"]},
        headers=ALICE,
    )
    made = await resp.json()
    assert resp.status == 200, made
    assert made["allowedAddresses"] == ["10.0.0.0/8"]  # stored in its IPv4 form
    for client, status in (("10.1.2.3", 200), ("::ffff:10.1.2.3", 200), ("192.0.2.1", 401)):
        headers = {**bearer(made["plainTextToken"]), "X-Forwarded-For": client}
        resp = await world.client.get(ISSUE, headers=headers)
        assert resp.status == status, (client, await resp.text())
