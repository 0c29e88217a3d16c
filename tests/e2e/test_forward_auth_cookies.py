"""Forward-auth mode behind a real nginx: an answer to a token keeps no Set-Cookie.

apitokenproxy does not see the upstream's answer in this mode, so the front
proxy must drop the cookies. nginx has no conditional ``proxy_hide_header``;
docs/front-proxies.md's configuration sends token requests (a user in the auth
answer) through a second, cookie-free loopback hop. This runs it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ..conftest import MakeLive
from ..fakes import basic
from ..peers.nginx import free_port, running_nginx
from .test_attacks import exchange
from .test_forward_auth import FRONT_SERVER, Front
from .test_policy_attacks import make_live_read_token

# As docs/front-proxies.md shows it ("Sessions opened for a token").
NGINX_COOKIELESS_SITE = """
    map $user $jira {{
        ""      http://127.0.0.1:{jira};
        default http://127.0.0.1:{cookieless};
    }}
    server {{
        listen 127.0.0.1:{cookieless};
        location / {{
            proxy_pass http://127.0.0.1:{jira};
            proxy_hide_header Set-Cookie;
            proxy_hide_header Set-Cookie2;
        }}
    }}
""" + FRONT_SERVER.replace("{upstream}", "$jira")


@pytest.fixture
async def front(make_live: MakeLive, tmp_path: Path) -> AsyncIterator[Front]:
    live = await make_live({"proxy": {"trusted_proxies": ["127.0.0.1/32"]}})
    port = free_port()
    site = NGINX_COOKIELESS_SITE.format(
        port=port, proxy=live.port, jira=live.upstream_port, cookieless=free_port()
    )
    with running_nginx(tmp_path / "nginx", site):
        yield Front(port, live)


@pytest.mark.slow  # a real nginx
@pytest.mark.parametrize("who", ["token", "password", "anonymous"])
async def test_only_a_token_answer_loses_its_cookies_behind_nginx(front: Front, who: str) -> None:
    token = await make_live_read_token(front.live)
    auth = {
        "token": [f"Authorization: Bearer {token}"],
        "password": [f"Authorization: {basic('alice', 'alice-pw')['Authorization']}"],
        "anonymous": [],
    }[who]
    front.live.upstream.received.clear()
    request = "\r\n".join(
        ["GET /_test/cookies?x=1 HTTP/1.1", "Host: jira.example.com", "Connection: close", *auth]
    )
    status, headers, _ = await exchange(front.port, (request + "\r\n\r\n").encode())
    assert status == 200
    received = front.live.upstream.for_clients()
    seen = [{k.lower(): v for k, v in r.headers} for r in received]
    assert [r.path_qs for r in received] == ["/_test/cookies?x=1"]
    assert seen[0].get("x-forwarded-user", "") == ("alice" if who == "token" else "")
    assert ("set-cookie" in headers) is (who != "token")
