"""Settings a SIGHUP changes while the proxy runs, in one holder every component reads.

``settings_of`` is pure: the reloadable part of a ``Config``, parsed once
(networks as ``Networks``, groups as a frozenset) into a frozen ``Settings``.
``Live`` holds the current one; a component keeps the holder and reads
``live.now`` at each use (a request, a connection), so a reload is one
assignment (``Live.swap``) that every lane and the pool see at once, and no
component keeps a copy a reload would miss. Which configuration keys are
live is ``reload.py``'s ``LIVE``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .config import Config, ListenConfig, ThrottleConfig, TokensConfig, UpstreamConfig
from .networks import Networks, parse_networks


@dataclass(frozen=True)
class ClientTimeouts:
    """How long a client may take, in seconds (``listen.*``): over its request head,
    idle between requests, between two reads of a body, and reading an answer; and the
    body's minimum average rate in bytes a second (0: none)."""

    header: float = 30.0
    keepalive: float = 75.0
    body: float = 60.0
    body_min_rate: int = 500
    send: float = 60.0

    @classmethod
    def from_config(cls, listen: ListenConfig) -> ClientTimeouts:
        return cls(
            header=listen.header_timeout_seconds,
            keepalive=listen.keepalive_timeout_seconds,
            body=listen.body_timeout_seconds,
            body_min_rate=listen.body_min_rate,
            send=listen.send_timeout_seconds,
        )


@dataclass(frozen=True)
class UpstreamLimits:
    """The upstream pool's live limits (``upstream.*``): seconds to connect and between
    two reads of an answer, and the connections one client address may hold (0: no cap,
    the default of a pool used on its own, as the CLI's)."""

    connect_timeout: float = 10.0
    read_timeout: float = 300.0
    per_client: int = 0

    @classmethod
    def from_config(cls, upstream: UpstreamConfig) -> UpstreamLimits:
        return cls(
            connect_timeout=upstream.connect_timeout_seconds,
            read_timeout=upstream.read_timeout_seconds,
            per_client=upstream.max_connections_per_client,
        )


@dataclass(frozen=True)
class Settings:
    """Everything a reload changes without a restart (the TLS certificate aside: its
    context is re-read in place). The defaults are a component's used on its own."""

    log_level: str = "INFO"
    access_log: bool = True
    log_format: Literal["text", "json"] = "text"
    throttle: ThrottleConfig = field(default_factory=ThrottleConfig)
    tokens: TokensConfig = field(default_factory=TokensConfig)
    allowed_networks: Networks = field(default_factory=Networks)
    manager_groups: frozenset[str] = frozenset()
    trusted: Networks = field(default_factory=Networks)
    client: ClientTimeouts = ClientTimeouts()
    upstream: UpstreamLimits = UpstreamLimits()


def settings_of(config: Config) -> Settings:
    """The live settings ``config`` names (it is validated: its networks parse)."""
    return Settings(
        log_level=config.logging.level.upper(),
        access_log=config.logging.access_log,
        log_format=config.logging.format,
        throttle=config.auth.throttle,
        tokens=config.tokens,
        allowed_networks=parse_networks(config.auth.allowed_networks),
        manager_groups=frozenset(config.auth.token_manager_groups),
        trusted=parse_networks(config.proxy.trusted_proxies),
        client=ClientTimeouts.from_config(config.listen),
        upstream=UpstreamLimits.from_config(config.upstream),
    )


class Live:
    """The current ``Settings``: read ``now`` at each use, never keep what it returned."""

    __slots__ = ("now",)

    def __init__(self, settings: Settings | None = None) -> None:
        self.now = settings or Settings()

    @classmethod
    def of(cls, config: Config) -> Live:
        return cls(settings_of(config))

    def swap(self, settings: Settings) -> None:
        """Make ``settings`` current for every reader at once."""
        self.now = settings
