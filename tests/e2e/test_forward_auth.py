"""The forward-auth mode behind a real nginx (``auth_request``), in front of the fake Jira.

nginx asks ``/__apitokenproxy/auth`` about every request and copies the user
header from the answer, as ``docs/front-proxies.md`` shows; each row is
judged by what the fake Jira received.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..conftest import Live, MakeLive
from ..peers.nginx import free_port, running_nginx
from .test_attacks import exchange, make_token

pytestmark = pytest.mark.slow  # a real nginx

# docs/front-proxies.md's server block; {upstream} is where nginx forwards to.
FRONT_SERVER = """
    server {{
        listen 127.0.0.1:{port};
        location = /__apitokenproxy_auth {{
            internal;
            proxy_pass http://127.0.0.1:{proxy}/__apitokenproxy/auth;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Method $request_method;
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header Upgrade $http_upgrade;
        }}
        location / {{
            auth_request /__apitokenproxy_auth;
            auth_request_set $user $upstream_http_x_forwarded_user;
            auth_request_set $authorization $upstream_http_x_apitokenproxy_authorization;
            proxy_set_header X-Forwarded-User $user;
            proxy_set_header Authorization $authorization;
            proxy_pass {upstream};
        }}
    }}
"""
NGINX_SITE = FRONT_SERVER.replace("{upstream}", "http://127.0.0.1:{jira}")


@dataclass
class Front:
    port: int
    live: Live

    def seen(self) -> list[dict[str, str]]:
        return [{k.lower(): v for k, v in r.headers} for r in self.live.upstream.for_clients()]


@pytest.fixture
async def front(make_live: MakeLive, tmp_path: Path) -> AsyncIterator[Front]:
    live = await make_live({"proxy": {"trusted_proxies": ["127.0.0.1/32"]}})
    port = free_port()
    site = NGINX_SITE.format(port=port, proxy=live.port, jira=live.upstream_port)
    with running_nginx(tmp_path / "nginx", site):
        yield Front(port, live)


def get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: jira.example.com", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def test_a_token_reaches_jira_as_its_owner_and_nothing_else(front: Front) -> None:
    token = (await make_token(front.live))["plainTextToken"]
    front.live.upstream.received.clear()
    spoofs = ["X-Forwarded-User: admin", "x-forwarded-user: admin", "X-Forwarded-User: root"]
    status, _, _ = await exchange(
        front.port, get("/rest/api/2/issue/X-1", f"Authorization: Bearer {token}", *spoofs)
    )
    assert status == 200
    (seen,) = front.seen()
    assert seen.get("x-forwarded-user") == "alice"
    assert "authorization" not in seen  # the token stays out of Jira's logs


@pytest.mark.parametrize(
    "spoof",
    [
        ["X-Forwarded-User: admin"],
        ["x-forwarded-user: admin"],
        ["X-FORWARDED-USER: admin", "X-Forwarded-User: root"],
        ["X_Forwarded_User: admin"],
        ["Connection: X-Forwarded-User", "X-Forwarded-User: admin"],
    ],
    ids=["plain", "lower", "repeated", "underscores", "named in Connection"],
)
async def test_anonymous_requests_reach_jira_with_no_user(front: Front, spoof: list[str]) -> None:
    status, _, _ = await exchange(front.port, get("/rest/api/2/issue/X-1", *spoof))
    assert status == 200
    (seen,) = front.seen()
    assert not [k for k in seen if k.replace("_", "-") == "x-forwarded-user"], seen


async def test_a_password_passes_through_for_jira_to_check(front: Front) -> None:
    basic = base64.b64encode(b"alice:alice-pw").decode()
    status, _, _ = await exchange(
        front.port, get("/rest/api/2/issue/X-1", f"Authorization: Basic {basic}")
    )
    assert status == 200
    (seen,) = front.seen()
    assert seen.get("authorization") == f"Basic {basic}" and "x-forwarded-user" not in seen


async def test_a_bad_token_is_refused_before_jira(front: Front) -> None:
    status, headers, _ = await exchange(
        front.port, get("/rest/api/2/issue/X-1", "Authorization: Bearer atpx_9_" + "A" * 38)
    )
    assert status == 401
    assert "basic" in headers.get("www-authenticate", "").lower()
    assert front.seen() == []


# A password in the query (Seraph's os_password), where the site's rules refuse it --------

SEEN_PASSWORD = "os_password"
# Before issue 18, item 8, the documented configuration lacked this line; it now
# refuses where the query matters, instead of missing the password.
WITHOUT_URI = NGINX_SITE.replace("            proxy_set_header X-Original-URI $request_uri;\n", "")


async def nginx_front(
    make_live: MakeLive, tmp_path: Path, auth: dict[str, Any], site: str = NGINX_SITE
) -> AsyncIterator[Front]:
    live = await make_live({"proxy": {"trusted_proxies": ["127.0.0.1/32"]}, "auth": auth})
    port = free_port()
    with running_nginx(
        tmp_path / "nginx", site.format(port=port, proxy=live.port, jira=live.upstream_port)
    ):
        yield Front(port, live)


@pytest.fixture(
    params=[
        ({"allow_password_basic_auth": False}, 401),
        ({"allowed_networks": ["10.0.0.0/8"]}, 403),  # nginx and its clients are 127.0.0.1
    ],
    ids=["passwords-off", "outside-allowed-networks"],
)
async def strict(
    request: pytest.FixtureRequest, make_live: MakeLive, tmp_path: Path
) -> AsyncIterator[tuple[Front, int]]:
    auth, status = request.param
    async for front in nginx_front(make_live, tmp_path, auth):
        yield front, status


@pytest.mark.parametrize(
    "query",
    [
        "os_username=alice&os_password=alice-pw",
        "os_authType=basic&os_username=alice&os_password=alice-pw",
        "os_username=alice&os%5Fpassword=alice-pw",
    ],
    ids=["seraph-params", "with-auth-type", "escaped-name"],
)
async def test_a_password_in_the_query_never_reaches_jira_behind_nginx(
    strict: tuple[Front, int], query: str
) -> None:
    """Issue 18, item 8: nginx's subrequest carried no query, so the password login
    got a 200 anonymous decision and went on to Jira (which logs alice in)."""
    front, status = strict
    got, _, body = await exchange(front.port, get(f"/rest/api/2/issue/X-1?{query}"))
    assert got == status, body
    assert [r.path_qs for r in front.live.upstream.received if SEEN_PASSWORD in r.path_qs] == []
    # The same request without the password goes through: the refusal is the password's.
    got, _, _ = await exchange(front.port, get("/rest/api/2/issue/X-1?jql=x"))
    assert got == 200
    assert [r.path_qs for r in front.live.upstream.for_clients()] == ["/rest/api/2/issue/X-1?jql=x"]


async def test_a_front_proxy_that_does_not_say_the_uri_is_refused_where_it_matters(
    make_live: MakeLive, tmp_path: Path
) -> None:
    """The documented configuration without its X-Original-URI line: with passwords off,
    every request is refused (403; nginx shows its own page, the proxy's access log
    says ``uri_missing``) rather than judged blind."""
    auth = {"allow_password_basic_auth": False}
    async for front in nginx_front(make_live, tmp_path, auth, WITHOUT_URI):
        for target in ("/rest/api/2/issue/X-1", "/rest/api/2/issue/X-1?os_password=pw"):
            got, _, body = await exchange(front.port, get(target))
            assert got == 403, body
        assert front.live.upstream.for_clients() == []
