"""Configuration: a table of bad configs and the messages they produce."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apitokenproxy.config import (
    Config,
    ConfigError,
    GroupLimit,
    UpstreamConfig,
    config_from_dict,
    load_config,
    parse_config,
)

MINIMAL = {"upstream": {"url": "http://jira.internal:8080"}}
ROOT = Path(__file__).resolve().parent.parent


def problems_of(data: Any, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, env or {})
    return info.value.problems


def test_minimal_config_takes_the_documented_defaults() -> None:
    config = config_from_dict(MINIMAL, {})
    assert config.listen.port == 8080
    assert config.upstream.product == "jira"
    assert config.upstream.user_header == "X-Forwarded-User"
    assert config.auth.allow_password_basic_auth is True
    assert config.tokens.default_validity_months == 6
    assert config.tokens.max_validity_months == 12
    assert config.store.url == "sqlite:////var/lib/apitokenproxy/tokens.db"
    assert config.audit.retention_days == 365


def test_policy_and_notify_settings_parse() -> None:
    config = config_from_dict(
        {
            **MINIMAL,
            "auth": {"allowed_networks": "10.0.0.0/8", "token_manager_groups": ["token-admins"]},
            "tokens": {
                "max_per_user": 10,
                "group_limits": [{"group": "ci", "max_validity_months": 24}],
            },
            "notify": {
                "warn_days": 7,
                "smtp": {"host": "mail", "user": "m", "password": "${SMTP_PASSWORD}"},
            },
        },
        {"SMTP_PASSWORD": "pw"},
    )
    assert config.auth.allowed_networks == ("10.0.0.0/8",)
    assert config.auth.token_manager_groups == ("token-admins",)
    assert config.tokens.group_limits == (GroupLimit("ci", 24, allow_never_expires=False),)
    assert config.tokens.max_per_user == 10
    assert config.notify.warn_days == (7,)
    assert config.notify.smtp.password == "pw"
    assert config.notify.enabled
    # The defaults keep the seed's behaviour: no cap, tokens manage tokens, no warnings.
    default = config_from_dict(MINIMAL, {})
    assert (default.tokens.max_per_user, default.tokens.tokens_may_manage_tokens) == (0, True)
    assert default.notify.warn_days == (14, 3)
    assert not default.notify.enabled


def test_config_is_frozen() -> None:
    config = config_from_dict(MINIMAL, {})
    with pytest.raises(AttributeError):
        config.listen.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, ["upstream: is required"]),
        ([], ["the top level: must be a mapping, not list"]),
        ({**MINIMAL, "lisen": {}}, ["lisen: unknown key"]),
        ({"upstream": {"url": "jira:8080"}}, ["upstream.url: must be an http:// or https:// URL"]),
        ({"upstream": {"url": "http://j/?x=1"}}, ["upstream.url: must not have a query"]),
        ({"upstream": {"url": "http://j", "product": "bamboo"}}, ["upstream.product: must be one of jira, confluence"]),
        ({"upstream": {"url": "http://j", "user_header": "X User"}}, ["upstream.user_header: must be a valid HTTP header name"]),
        ({"upstream": {"url": "http://j", "user_header": "Authorization"}}, ["upstream.user_header: Authorization cannot carry"]),
        ({"upstream": {"url": "http://j", "shared_secret": "x"}}, ["upstream.shared_secret: shared_secret and shared_secret_header"]),
        ({**MINIMAL, "listen": {"port": 70000}}, ["listen.port: must be a port number"]),
        ({**MINIMAL, "listen": {"port": "80"}}, ["listen.port: must be a whole number"]),
        ({**MINIMAL, "listen": {"workers": -1}}, ["listen.workers: must be 0 or greater"]),
        (
            {**MINIMAL, "listen": {"tls": {"cert_file": "/etc/hostname"}}},
            ["listen.tls: cert_file and key_file must be set together"],
        ),
        (
            {"upstream": {"url": "https://j", "ca_file": "/nonexistent/ca.pem"}},
            ["upstream.ca_file: cannot read /nonexistent/ca.pem"],
        ),
        ({**MINIMAL, "listen": "0.0.0.0:80"}, ["listen: must be a mapping, not str"]),
        ({**MINIMAL, "store": {"url": "mysql://x"}}, ["store.url: must be sqlite:////ABSOLUTE/PATH"]),
        ({**MINIMAL, "auth": {"allow_password_basic_auth": "no"}}, ["auth.allow_password_basic_auth: must be true or false"]),
        ({**MINIMAL, "auth": {"admin_user_keys": [1]}}, ["auth.admin_user_keys[0]: must be a string"]),
        ({**MINIMAL, "auth": {"throttle": {"max_failures": 0}}}, ["auth.throttle.max_failures: must be greater than 0"]),
        ({**MINIMAL, "tokens": {"default_validity_months": 24}}, ["tokens.default_validity_months: must be between 1 and"]),
        ({**MINIMAL, "tokens": {"max_validity_months": -1}}, ["tokens.max_validity_months: must be 0 or greater"]),
        ({**MINIMAL, "proxy": {"trusted_proxies": ["10.0.0.0/8", "nope"]}}, ["proxy.trusted_proxies: not IP networks: nope"]),
        ({**MINIMAL, "logging": {"level": "LOUD"}}, ["logging.level: must be one of"]),
        ({**MINIMAL, "audit": {"retention_days": 0}}, ["audit.retention_days: must be greater than 0"]),
        ({**MINIMAL, "auth": {"allowed_networks": ["10.0.0.0/33"]}}, ["auth.allowed_networks: not IP networks: 10.0.0.0/33"]),
        ({**MINIMAL, "tokens": {"max_per_user": -1}}, ["tokens.max_per_user: must be 0 or greater"]),
        ({**MINIMAL, "tokens": {"group_limits": [{"max_validity_months": 3}]}}, ["tokens.group_limits[0].group: is required"]),
        ({**MINIMAL, "tokens": {"group_limits": [{"group": "a", "colour": 1}]}}, ["tokens.group_limits[0].colour: unknown key"]),
        ({**MINIMAL, "tokens": {"group_limits": [{"group": " "}]}}, ["tokens.group_limits[0].group: must not be empty"]),
        ({**MINIMAL, "tokens": {"group_limits": ["ci"]}}, ["tokens.group_limits[0]: must be a mapping, not str"]),
        ({**MINIMAL, "notify": {"warn_days": [14, 0]}}, ["notify.warn_days: every day count must be greater than 0"]),
        ({**MINIMAL, "notify": {"warn_days": [3, 3]}}, ["notify.warn_days: must not repeat"]),
        ({**MINIMAL, "notify": {"warn_days": ["14"]}}, ["notify.warn_days[0]: must be a whole number"]),
        ({**MINIMAL, "notify": {"smtp": {"security": "ssl"}}}, ["notify.smtp.security: must be one of none, starttls, tls"]),
        ({**MINIMAL, "notify": {"smtp": {"user": "mailer"}}}, ["notify.smtp: user and password must be set together"]),
        ({**MINIMAL, "notify": {"webhook": {"url": "http://hooks"}}}, ["notify.webhook.secret: is required"]),
        ({**MINIMAL, "notify": {"smtp": {"user": "m", "password": "${SMTP_PASSWORD}"}}}, ["notify.smtp.password: environment variable SMTP_PASSWORD is not set"]),
        ({"upstream": {"url": "http://j", "shared_secret_header": "X-S", "shared_secret": "${SECRET}"}}, ["upstream.shared_secret: environment variable SECRET is not set"]),
    ],
)  # fmt: skip
def test_bad_configs_name_the_key_and_the_problem(data: Any, expected: list[str]) -> None:
    problems = problems_of(data)
    assert len(problems) == len(expected), problems
    for problem, fragment in zip(problems, expected, strict=True):
        assert problem.startswith(fragment), problems


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of(
        {
            "upstream": {"url": "ftp://x", "product": "jra"},
            "listen": {"port": -1, "extra": True},
            "tokens": {"max_validity_months": "12"},
        }
    )
    assert [p.split(":")[0] for p in problems] == [
        "upstream.url",
        "upstream.product",
        "listen.extra",
        "listen.port",
        "tokens.max_validity_months",
    ]


def test_environment_variables_are_substituted() -> None:
    config = config_from_dict(
        {
            "upstream": {
                "url": "http://${JIRA_HOST}:8080",
                "shared_secret_header": "X-Proxy-Secret",
                "shared_secret": "${PROXY_SECRET}",
            },
            "store": {"url": "sqlite:////tmp/a$$b.db"},
        },
        {"JIRA_HOST": "jira.internal", "PROXY_SECRET": "s3cr3t"},
    )
    assert config.upstream.url == "http://jira.internal:8080"
    assert config.upstream.shared_secret == "s3cr3t"
    assert config.store.url == "sqlite:////tmp/a$b.db"


def test_yaml_errors_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_config("upstream: [unclosed", {})
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml", {})


def all_keys(cls: Any, prefix: str = "") -> Iterator[str]:
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        yield prefix + field.name
        if dataclasses.is_dataclass(hints[field.name]):
            yield from all_keys(hints[field.name], f"{prefix}{field.name}.")


def test_the_example_config_is_valid_and_documents_every_key() -> None:
    text = (ROOT / "config.example.yaml").read_text()
    config = parse_config(text, {"APITOKENPROXY_SHARED_SECRET": "x"})
    assert isinstance(config, Config)
    for key in all_keys(Config):
        leaf = key.rsplit(".", 1)[-1]
        assert f"{leaf}:" in text, f"config.example.yaml does not document {key}"


@pytest.mark.parametrize(
    ("url", "resolved"),
    [
        ("sqlite:///tokens.db", "sqlite:////etc/apitokenproxy/tokens.db"),
        ("sqlite:///../data/t.db", "sqlite:////etc/data/t.db"),
        ("sqlite:////var/lib/t.db", "sqlite:////var/lib/t.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
    ],
)
def test_store_urls_resolve_against_the_config_files_folder(url: str, resolved: str) -> None:
    config = parse_config(
        f"upstream: {{url: 'http://j'}}\nstore: {{url: '{url}'}}\n",
        base=Path("/etc/apitokenproxy"),
    )
    assert config.store.url == resolved


def test_the_default_store_is_absolute() -> None:
    assert Config(upstream=UpstreamConfig(url="http://j")).store.url.startswith("sqlite:////")
