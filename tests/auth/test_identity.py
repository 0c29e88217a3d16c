"""The upstream as identity provider, against fake Jira/Confluence and broken upstreams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import pytest
from aiohttp import web
from yarl import URL

from apitokenproxy.auth.identity import ActingAs, UpstreamIdentity, User
from apitokenproxy.errors import PasswordRejected, UpstreamTimeout, UpstreamUnavailable
from apitokenproxy.proxy.pool import UpstreamPool, pool_for

from ..fakes import CONFLUENCE_USERS, JIRA_USERS, USER_HEADER, FakeUpstream

Identity = Callable[..., UpstreamIdentity]


@pytest.fixture
async def identity_for() -> AsyncIterator[Identity]:
    """UpstreamIdentity for a URL, over the proxy's own upstream pool, closed afterwards."""
    pools: list[UpstreamPool] = []

    def make(url: str, product: Literal["jira", "confluence"], **options: Any) -> UpstreamIdentity:
        pools.append(pool_for(url))
        return UpstreamIdentity(pools[-1].fetch, url, product, **options)

    yield make
    for pool in pools:
        pool.close()


async def provider(
    aiohttp_server: Any, identity_for: Identity, product: Literal["jira", "confluence"]
) -> tuple[UpstreamIdentity, FakeUpstream]:
    fake = FakeUpstream(product, JIRA_USERS if product == "jira" else CONFLUENCE_USERS)
    server = await aiohttp_server(fake.app())
    return identity_for(str(server.make_url("")), product), fake


def as_user(name: str) -> ActingAs:
    return ActingAs({USER_HEADER: name})


@pytest.mark.parametrize("product", ["jira", "confluence"])
async def test_password_check_and_lookups(
    aiohttp_server: Any, identity_for: Identity, product: Literal["jira", "confluence"]
) -> None:
    identity, fake = await provider(aiohttp_server, identity_for, product)
    users = fake.users
    admin, alice = users[0], users[1]
    expected = User(alice.key, "alice", "alice@example.com")  # the e-mail as the upstream says
    assert await identity.check_password("alice", "alice-pw") == expected
    with pytest.raises(PasswordRejected, match="wrong user name or password"):
        await identity.check_password("alice", "nope")
    assert await identity.find_user(alice.key, as_user("admin")) == expected
    assert await identity.find_user("no-such-key", as_user("admin")) is None
    assert await identity.is_sysadmin(User(admin.key, "admin"), as_user("admin")) is True
    assert await identity.is_sysadmin(User(alice.key, "alice"), as_user("alice")) is False


@pytest.mark.parametrize("product", ["jira", "confluence"])
async def test_groups_and_email(
    aiohttp_server: Any, identity_for: Identity, product: Literal["jira", "confluence"]
) -> None:
    identity, fake = await provider(aiohttp_server, identity_for, product)
    bob = fake.users[2]
    assert bob.groups
    assert await identity.groups(User(bob.key, "bob"), as_user("bob")) == frozenset(bob.groups)
    # Both fakes show users their own address (Confluence does when its
    # e-mail visibility setting lets the viewer see it).
    assert await identity.email(as_user("bob")) == "bob@example.com"


async def test_user_keys_are_quoted(aiohttp_server: Any, identity_for: Identity) -> None:
    identity, fake = await provider(aiohttp_server, identity_for, "jira")
    assert await identity.find_user("a&b=c/d", as_user("admin")) is None
    assert URL(fake.received[-1].path_qs).query["key"] == "a&b=c/d"


async def test_confluence_group_paging(aiohttp_server: Any, identity_for: Identity) -> None:
    fake = FakeUpstream("confluence", CONFLUENCE_USERS)
    server = await aiohttp_server(fake.app())
    many = (*(f"group-{i}" for i in range(450)), "confluence-administrators")
    fake.users = (fake.users[0].__class__("k1", "carol", "pw", groups=many),)
    identity = identity_for(str(server.make_url("")), "confluence")
    assert await identity.is_sysadmin(User("k1", "carol"), as_user("carol")) is True
    assert sum("memberof" in r.path_qs for r in fake.received) == 3


async def _broken(aiohttp_server: Any, handler: Any) -> str:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return str((await aiohttp_server(app)).make_url(""))


async def test_garbage_answers_are_502(aiohttp_server: Any, identity_for: Identity) -> None:
    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>maintenance</html>", content_type="text/html")

    identity = identity_for(await _broken(aiohttp_server, html), "jira")
    with pytest.raises(UpstreamUnavailable, match="not JSON"):
        await identity.check_password("alice", "pw")


async def test_server_errors_are_502(aiohttp_server: Any, identity_for: Identity) -> None:
    async def boom(request: web.Request) -> web.Response:
        return web.Response(status=503)

    identity = identity_for(await _broken(aiohttp_server, boom), "jira")
    with pytest.raises(UpstreamUnavailable, match="HTTP 503"):
        await identity.check_password("alice", "pw")


async def test_slow_upstream_is_504(aiohttp_server: Any, identity_for: Identity) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response()

    url = await _broken(aiohttp_server, slow)
    identity = identity_for(url, "jira", timeout_seconds=0.2)
    with pytest.raises(UpstreamTimeout, match="did not answer in time"):
        await identity.check_password("alice", "pw")


async def test_refused_connection_is_502(identity_for: Identity) -> None:
    identity = identity_for("http://127.0.0.1:9", "confluence")
    with pytest.raises(UpstreamUnavailable, match="cannot be reached"):
        await identity.check_password("alice", "pw")


@pytest.mark.parametrize("product", ["jira", "confluence"])
async def test_session_user_forwards_only_the_cookie(
    aiohttp_server: Any, identity_for: Identity, product: Literal["jira", "confluence"]
) -> None:
    identity, fake = await provider(aiohttp_server, identity_for, product)
    alice = fake.users[1]
    session = fake.sign_in("alice")
    cookie = f"atlassian.xsrf.token=x; JSESSIONID={session}"
    assert await identity.session_user(cookie) == User(alice.key, "alice", alice.email)
    asked = fake.received[-1]
    names = {name.lower() for name, _ in asked.headers}
    assert ("cookie", cookie) in [(n.lower(), v) for n, v in asked.headers]
    assert "authorization" not in names and USER_HEADER.lower() not in names
    # Unknown sessions: Jira answers 401, Confluence the anonymous user.
    assert await identity.session_user("JSESSIONID=forged") is None
    fake.sessions.clear()
    assert await identity.session_user(cookie) is None
