"""The composition root: what it wires together is what each part is promised."""

from __future__ import annotations

from pathlib import Path

import pytest

from apitokenproxy.app import served_here, served_here_with
from apitokenproxy.components import Components
from apitokenproxy.config import PagesConfig, StoreConfig, config_from_dict
from apitokenproxy.proxy.pool import UpstreamPool
from apitokenproxy.store import NewToken, TokenStore
from apitokenproxy.store.audit import Action, How


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


async def test_what_opened_closes_in_reverse_when_a_later_resource_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import apitokenproxy.components as components

    events: list[str] = []
    open_store = components.open_configured

    async def recorded_store(config: StoreConfig) -> TokenStore:
        store = await open_store(config)
        close = store.close

        async def closed() -> None:
            events.append("store closed")
            await close()

        monkeypatch.setattr(store, "close", closed)
        events.append("store opened")
        return store

    def no_pool(*args: object, **kwargs: object) -> UpstreamPool:
        events.append("pool failed")
        raise OSError("no CA file")

    monkeypatch.setattr(components, "open_configured", recorded_store)
    monkeypatch.setattr(components, "pool_for", no_pool)
    config = config_from_dict(
        {"upstream": {"url": "http://127.0.0.1:9"}, "store": {"url": f"sqlite:///{tmp_path}/t.db"}}
    )
    with pytest.raises(OSError, match="no CA file"):
        async with Components.opened(config, served_here=served_here):
            pass
    assert events == ["store opened", "pool failed", "store closed"]


async def test_a_clean_exit_writes_the_last_uses_before_the_store_closes(tmp_path: Path) -> None:
    config = config_from_dict(
        {"upstream": {"url": "http://127.0.0.1:9"}, "store": {"url": f"sqlite:///{tmp_path}/t.db"}}
    )
    async with Components.opened(config, served_here=served_here) as c:
        created = await c.store.create(
            NewToken("k", "alice", "ci", "hash", created=1, valid_until=None, created_by_key="k"),
            Action(at=1, actor_key="k", actor_name="alice", how=How.CLI),
        )
        c.last_accessed.record(created.id, 1234, "192.0.2.7")
    async with Components.opened(config, served_here=served_here) as c:
        found = await c.store.get(created.id)
    assert found is not None and (found.last_accessed, found.last_accessed_from) == (
        1234,
        "192.0.2.7",
    )
