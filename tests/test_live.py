"""The live settings: what a Config makes of them (pure), and a swap seen by every reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from apitokenproxy.app import served_here
from apitokenproxy.components import Components
from apitokenproxy.config import ThrottleConfig, TokensConfig, config_from_dict
from apitokenproxy.live import ClientTimeouts, Live, Settings, UpstreamLimits, settings_of
from apitokenproxy.networks import parse_networks

BASE: dict[str, Any] = {"upstream": {"url": "http://jira:8080"}}


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        ({}, {}),
        ({"logging": {"level": "debug", "access_log": False, "format": "json"}},
         {"log_level": "DEBUG", "access_log": False, "log_format": "json"}),
        ({"auth": {"throttle": {"max_failures": 3, "window_seconds": 5}}},
         {"throttle": ThrottleConfig(max_failures=3, window_seconds=5)}),
        ({"tokens": {"max_per_user": 4}}, {"tokens": TokensConfig(max_per_user=4)}),
        ({"auth": {"allowed_networks": ["10.0.0.0/8"], "token_manager_groups": ["ops", "ci"]}},
         {"allowed_networks": parse_networks(["10.0.0.0/8"]),
          "manager_groups": frozenset({"ops", "ci"})}),
        ({"proxy": {"trusted_proxies": ["::ffff:192.0.2.0/120"]}},
         {"trusted": parse_networks(["192.0.2.0/24"])}),
        ({"listen": {"header_timeout_seconds": 1, "keepalive_timeout_seconds": 2,
                     "body_timeout_seconds": 3, "body_min_rate": 0, "send_timeout_seconds": 4}},
         {"client": ClientTimeouts(header=1, keepalive=2, body=3, body_min_rate=0, send=4)}),
        ({"upstream": {"url": "http://jira:8080", "connect_timeout_seconds": 2,
                       "read_timeout_seconds": 9, "max_connections_per_client": 0}},
         {"upstream": UpstreamLimits(connect_timeout=2, read_timeout=9, per_client=0)}),
    ],
)  # fmt: skip
def test_settings_from_a_config(sections: dict[str, Any], expected: dict[str, Any]) -> None:
    # What the configuration does not set is its default: upstream's per-client cap is 64.
    defaults = {"upstream": UpstreamLimits(per_client=64)}
    assert settings_of(config_from_dict({**BASE, **sections})) == Settings(
        **{**defaults, **expected}
    )


def test_a_swap_is_one_assignment_every_reader_sees() -> None:
    live = Live()
    before = live.now
    after = Settings(trusted=parse_networks(["10.0.0.0/8"]))
    live.swap(after)
    assert live.now is after
    assert before.trusted == ()  # what a reader took before stays as it was


async def test_every_component_reads_the_swapped_settings(tmp_path: Path) -> None:
    config = config_from_dict({**BASE, "store": {"url": f"sqlite:///{tmp_path / 't.db'}"}})
    async with Components.opened(config, served_here=served_here) as c:
        trusted = parse_networks(["10.0.0.0/8"])
        client = ClientTimeouts(header=1, keepalive=2, body=3, body_min_rate=4, send=5)
        limits = UpstreamLimits(connect_timeout=6, read_timeout=7, per_client=8)
        tokens = TokensConfig(max_per_user=9)
        c.live.swap(
            Settings(
                trusted=trusted,
                client=client,
                upstream=limits,
                tokens=tokens,
                allowed_networks=parse_networks(["192.0.2.0/24"]),
            )
        )
        assert c.fast_lane.live.now.trusted is c.forwarder.trusted is trusted
        assert c.fast_lane.live.now.client is c.pool.timeouts is client
        assert (c.pool.connect_timeout, c.pool.read_timeout, c.pool.per_client) == (6, 7, 8)
        assert c.token_api.service.config is tokens
        assert c.networks.allows("192.0.2.1") and not c.networks.allows("10.0.0.1")
