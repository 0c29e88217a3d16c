"""Forward auth's decisions: which request-target is judged (X-Original-URI,
X-Forwarded-Uri, the subrequest's own), the os_password rule, the allowed networks,
and the headers a front proxy copies; on a real aiohttp server, with a real gate."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from apitokenproxy.app import errors_middleware
from apitokenproxy.auth.gate import Gate
from apitokenproxy.auth.networks import AllowedNetworks
from apitokenproxy.config import UpstreamConfig
from apitokenproxy.live import Live, Settings
from apitokenproxy.networks import parse_networks
from apitokenproxy.proxy.forwardauth import FORWARD_AUTHORIZATION, ForwardAuth, strictest_target
from apitokenproxy.proxy.headers import Injection

from ..fakes import USER_HEADER, FakeUser
from ..services import Services, services

SUBREQUEST = "/__apitokenproxy/auth"
PASSWORD = "Basic " + base64.b64encode(b"alice:alice-pw").decode()


@pytest.mark.parametrize(
    ("targets", "judged"),
    [
        ([SUBREQUEST], SUBREQUEST),
        (["/x?a=1", SUBREQUEST], "/x?a=1"),
        (["/x?os_password=pw", SUBREQUEST], "/x?os_password=pw"),
        # A client's clean copy beside the front proxy's: the password is still seen.
        (["/x", "/x?os_password=pw", SUBREQUEST], "/x?os_password=pw"),
        (["/x?os_password=pw", "/x", SUBREQUEST], "/x?os_password=pw"),
        (["/x", "/y?os%5Fpassword=pw", SUBREQUEST], "/y?os%5Fpassword=pw"),
        # The subrequest's own query counts too, where a configuration passes one.
        (["/x", SUBREQUEST + "?os_password=pw"], SUBREQUEST + "?os_password=pw"),
    ],
)
def test_the_strictest_target_is_judged(targets: list[str], judged: str) -> None:
    assert strictest_target(targets) == judged


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Services]:
    users = (FakeUser("key-alice", "alice", "alice-pw"),)
    async with services(f"sqlite:///{tmp_path / 'tokens.db'}", users) as built:
        yield built


async def front(
    aiohttp_client: Any,
    rig: Services,
    *,
    allow_password: bool = True,
    networks: tuple[str, ...] = (),
) -> TestClient[Any, Any]:
    """A client of the forward-auth endpoint alone, as a front proxy calls it."""
    allowed = AllowedNetworks(Live(Settings(allowed_networks=parse_networks(networks))))
    gate = Gate(rig.verifier, allow_password=allow_password, networks=allowed)
    injection = Injection.from_config(UpstreamConfig(url="http://jira.invalid"))
    handler = ForwardAuth(gate, injection, Live())
    app = web.Application(middlewares=[errors_middleware])
    app.router.add_route("*", SUBREQUEST, handler.handle)
    return await aiohttp_client(app)  # type: ignore[no-any-return]


# (site, the target headers the front proxy sent, status, the refusal's reason)
TARGETS = [
    # Passwords allowed and no networks: the query cannot be refused, need not be said.
    ("open", {}, 200),
    ("open", {"X-Original-URI": "/browse/X-1?os_password=pw"}, 200),
    # Passwords off: the target must be said (403), and a password in it is a
    # password login, refused as on the data path (401).
    ("no-passwords", {}, 403),
    ("no-passwords", {"X-Original-URI": "/browse/X-1"}, 200),
    ("no-passwords", {"X-Forwarded-Uri": "/browse/X-1"}, 200),
    ("no-passwords", {"X-Original-URI": "/browse/X-1?os_password=pw"}, 401),
    ("no-passwords", {"X-Forwarded-Uri": "/browse/X-1?os_username=a&os_password=pw"}, 401),
    # Both said: a clean copy cannot hide the other's password.
    ("no-passwords",
     {"X-Original-URI": "/browse/X-1", "X-Forwarded-Uri": "/x?os_password=pw"}, 401),
    # Allowed networks set (this client, 127.0.0.1, is inside them): the target must be said.
    ("networks", {}, 403),
    ("networks", {"X-Original-URI": "/browse/X-1"}, 200),
]  # fmt: skip

SITES: dict[str, dict[str, Any]] = {
    "open": {},
    "no-passwords": {"allow_password": False},
    "networks": {"networks": ("127.0.0.0/8",)},
}


@pytest.mark.parametrize(("site", "said", "status"), TARGETS)
async def test_where_the_query_matters_the_target_must_be_said(
    aiohttp_client: Any, rig: Services, site: str, said: dict[str, str], status: int
) -> None:
    _, token = await rig.token("alice")
    client = await front(aiohttp_client, rig, **SITES[site])
    resp = await client.get(SUBREQUEST, headers={"Authorization": f"Bearer {token}", **said})
    assert resp.status == status, await resp.text()
    if status == 200:
        assert resp.headers[USER_HEADER] == "alice"
        assert resp.headers[FORWARD_AUTHORIZATION] == ""  # a token never reaches the upstream
    elif not said:
        assert "set X-Original-URI" in (await resp.json())["message"]
    else:
        assert "password login is disabled" in (await resp.json())["message"]


@pytest.mark.parametrize(
    ("credentials", "networks", "status", "user", "forwarded"),
    [
        ("token", (), 200, "alice", ""),
        ("password", (), 200, "", PASSWORD),  # the upstream checks it: passed on
        ("none", (), 200, "", ""),  # the upstream decides about anonymous calls
        ("token", ("10.0.0.0/8",), 403, None, None),  # 127.0.0.1 is outside
        ("password", ("10.0.0.0/8",), 403, None, None),
        ("token", ("127.0.0.0/8",), 200, "alice", ""),
        ("password", ("127.0.0.0/8",), 200, "", PASSWORD),
    ],
)
async def test_what_the_front_proxy_is_told_to_forward(
    aiohttp_client: Any,
    rig: Services,
    credentials: str,
    networks: tuple[str, ...],
    status: int,
    user: str | None,
    forwarded: str | None,
) -> None:
    _, token = await rig.token("alice")
    client = await front(aiohttp_client, rig, networks=networks)
    authorization = {"token": f"Bearer {token}", "password": PASSWORD, "none": None}[credentials]
    headers = {"X-Original-URI": "/browse/X-1", USER_HEADER: "admin"}  # a client's own copy
    if authorization is not None:
        headers["Authorization"] = authorization
    resp = await client.get(SUBREQUEST, headers=headers)
    assert resp.status == status, await resp.text()
    if status != 200:
        return
    # Always said, empty for "no user": the front proxy overwrites the client's copy.
    assert resp.headers[USER_HEADER] == user
    assert resp.headers[FORWARD_AUTHORIZATION] == forwarded


@pytest.mark.parametrize(
    ("scope", "forwarded_method", "status"),
    [
        ("read", "GET", 200),
        ("read", None, 403),  # nginx says no method by itself: never taken for a read
        ("read", "POST", 403),
        ("read", "GET, POST", 403),  # the strictest of what is said
        ("write", None, 200),
        ("write", "DELETE", 200),
    ],
)
async def test_a_read_token_needs_the_method_said(
    aiohttp_client: Any, rig: Services, scope: str, forwarded_method: str | None, status: int
) -> None:
    _, token = await rig.token("alice", scope=scope)
    client = await front(aiohttp_client, rig)
    headers = {"Authorization": f"Bearer {token}", "X-Original-URI": "/browse/X-1"}
    if forwarded_method is not None:
        headers["X-Forwarded-Method"] = forwarded_method
    resp = await client.get(SUBREQUEST, headers=headers)
    assert resp.status == status, await resp.text()
