"""Configuration: YAML parsed once into frozen, typed objects.

    config/model.py      every key and its default (the frozen dataclasses)
    config/checks.py     the rule each key's value must keep
    config/loading.py    YAML, ${ENV_VAR}, building and checking; every problem at once

Import from here: ``from apitokenproxy.config import Config, load_config``.
"""

from __future__ import annotations

from ..errors import ConfigError
from .loading import config_from_dict, load_config, parse_config, resolve_store_url
from .model import (
    AuditConfig,
    AuthConfig,
    Config,
    GroupLimit,
    ListenConfig,
    LoggingConfig,
    MetricsConfig,
    NotifyConfig,
    PagesConfig,
    ProxyConfig,
    SmtpConfig,
    StoreConfig,
    ThrottleConfig,
    TlsConfig,
    TokensConfig,
    UpstreamConfig,
    WebhookConfig,
)

__all__ = [
    "AuditConfig",
    "AuthConfig",
    "Config",
    "ConfigError",
    "GroupLimit",
    "ListenConfig",
    "LoggingConfig",
    "MetricsConfig",
    "NotifyConfig",
    "PagesConfig",
    "ProxyConfig",
    "SmtpConfig",
    "StoreConfig",
    "ThrottleConfig",
    "TlsConfig",
    "TokensConfig",
    "UpstreamConfig",
    "WebhookConfig",
    "config_from_dict",
    "load_config",
    "parse_config",
    "resolve_store_url",
]
