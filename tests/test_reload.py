"""Which configuration changes a SIGHUP applies live, and which need a restart: pure."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from apitokenproxy.config import config_from_dict
from apitokenproxy.live import Live, settings_of
from apitokenproxy.reload import Reloader, changes, split

BASE: dict[str, Any] = {"upstream": {"url": "http://jira:8080"}}


def with_(**sections: dict[str, Any]) -> dict[str, Any]:
    return {**BASE, **sections}


@pytest.mark.parametrize(
    ("new", "live", "restart"),
    [
        (BASE, [], []),
        (with_(logging={"level": "DEBUG"}), ["logging.level"], []),
        (with_(auth={"throttle": {"max_failures": 3}}), ["auth.throttle.max_failures"], []),
        (with_(tokens={"max_validity_months": 6, "default_validity_months": 3}),
         ["tokens.default_validity_months", "tokens.max_validity_months"], []),
        (with_(tokens={"max_rotation_grace_seconds": 60}), ["tokens.max_rotation_grace_seconds"],
         []),
        (with_(proxy={"trusted_proxies": ["10.0.0.0/8"]}), ["proxy.trusted_proxies"], []),
        (with_(auth={"allowed_networks": ["10.0.0.0/8"], "token_manager_groups": ["x"]}),
         ["auth.allowed_networks", "auth.token_manager_groups"], []),
        (with_(tokens={"max_per_user": 3, "group_limits": [{"group": "ci"}]}),
         ["tokens.group_limits", "tokens.max_per_user"], []),
        (with_(notify={"warn_days": [7]}), [], ["notify.warn_days"]),
        (with_(listen={"keepalive_timeout_seconds": 5}), ["listen.keepalive_timeout_seconds"], []),
        (with_(upstream={"url": "http://jira:8080", "read_timeout_seconds": 9}),
         ["upstream.read_timeout_seconds"], []),
        (with_(listen={"port": 9000}), [], ["listen.port"]),
        (with_(upstream={"url": "http://other:8080"}), [], ["upstream.url"]),
        (with_(store={"url": "sqlite:////tmp/other.db"}), [], ["store.url"]),
        (with_(audit={"retention_days": 30}), [], ["audit.retention_days"]),
        (with_(proxy={"fast_path": False}, logging={"access_log": False}),
         ["logging.access_log"], ["proxy.fast_path"]),
        (with_(logging={"format": "json"}, metrics={"allow": ["10.0.0.0/8"]}),
         ["logging.format"], ["metrics.allow"]),
    ],
)  # fmt: skip
def test_what_a_reload_applies(new: dict[str, Any], live: list[str], restart: list[str]) -> None:
    changed = changes(config_from_dict(BASE), config_from_dict(new))
    assert split(changed) == (live, restart)


def test_a_reload_swaps_the_live_settings_and_says_what_needs_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(BASE))
    old = config_from_dict(BASE)
    live = Live.of(old)
    before = live.now
    reloader = Reloader(path, old, live, None)
    changed = with_(proxy={"trusted_proxies": ["10.0.0.0/8"]}, listen={"port": 9000})
    path.write_text(yaml.safe_dump(changed))
    with caplog.at_level(logging.WARNING, logger="apitokenproxy"):
        assert reloader.reload()
    assert live.now == settings_of(config_from_dict(changed)) != before
    assert [r.getMessage() for r in caplog.records] == [
        "SIGHUP: applied proxy.trusted_proxies",
        "SIGHUP: restart to apply listen.port",
    ]
    # An invalid file changes nothing.
    path.write_text(yaml.safe_dump(with_(proxy={"trusted_proxies": ["nonsense"]})))
    applied = live.now
    assert not reloader.reload()
    assert live.now is applied
