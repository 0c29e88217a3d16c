"""The composition root: what it wires together is what each part is promised."""

from __future__ import annotations

from pathlib import Path

import pytest

from apitokenproxy.app import served_here, served_here_with
from apitokenproxy.components import Components
from apitokenproxy.config import PagesConfig, config_from_dict


@pytest.mark.parametrize(
    ("encoding", "sent"),
    [("latin-1", "José"), ("utf-8", "JosÃ©"), ("percent", "Jos%C3%A9")],
)
async def test_calls_on_a_token_owners_behalf_write_the_name_as_the_data_path_does(
    tmp_path: Path, encoding: str, sent: str
) -> None:
    config = config_from_dict(
        {
            "upstream": {
                "url": "http://127.0.0.1:9",
                "user_header_encoding": encoding,
                "shared_secret_header": "X-Proxy-Secret",
                "shared_secret": "s3cret",
            },
            "store": {"url": f"sqlite:///{tmp_path / 't.db'}"},
        }
    )
    async with Components.opened(config, served_here=served_here) as components:
        acting = components.token_api.authenticator.acting_for("José")
    assert dict(acting.headers) == {"X-Forwarded-User": sent, "X-Proxy-Secret": "s3cret"}


@pytest.mark.parametrize(
    ("path", "here"),
    [
        ("/rest/de.resolution.apitokenauth/latest/user/token", True),
        ("/jira/REST/DE.RESOLUTION.APITOKENAUTH/latest/x", True),
        ("/__apitokenproxy/health", True),
        ("/rest/api/2/issue/X-1", False),
        ("/", False),
    ],
)
def test_the_fast_lane_hands_on_what_the_application_serves(path: str, here: bool) -> None:
    assert served_here(path) is here


async def test_the_proxys_own_rest_calls_share_the_data_paths_upstream_pool(
    tmp_path: Path,
) -> None:
    config = config_from_dict(
        {"upstream": {"url": "http://127.0.0.1:9"}, "store": {"url": f"sqlite:///{tmp_path}/t.db"}}
    )
    async with Components.opened(config, served_here=served_here) as components:
        identity = components.token_api.service._identity  # type: ignore[attr-defined]
        fetch = identity._fetch
        assert fetch.__self__ is components.pool  # one budget of upstream connections
        assert components.forwarder._pool is components.pool
        assert components.fast_lane.pool is components.pool


@pytest.mark.parametrize(
    ("path", "enabled", "here"),
    [
        ("/apitokens/", True, True),
        ("/APITOKENS/manager", True, True),
        ("/jira/apitokens/static/pages.js", True, True),
        ("/apitokens/", False, False),
        ("/rest/api/2/myself", True, False),
        ("/rest/de.resolution.apitokenauth/latest/user/token", False, True),
        ("/__apitokenproxy/health", True, True),
    ],
)
def test_the_pages_are_handed_on_by_the_fast_lane_when_on(
    path: str, enabled: bool, here: bool
) -> None:
    assert served_here_with(PagesConfig(enabled=enabled))(path) is here
