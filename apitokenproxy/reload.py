"""SIGHUP: read the configuration file again and apply what can change without a restart.

``changes`` and ``split`` are pure: which keys differ, and which of those
take effect live. ``Reloader.reload`` reads and validates the file (an
invalid one is refused with its problems logged, and the old configuration
stays), swaps the new ``live.Settings`` into the components' one ``Live``
holder (every component reads it at each use), and names in a log line every
change that needs a restart. No connection is dropped.

Live: the log level, the access log and its format, throttling, the token rules
(validity limits, per-group rules, the per-user cap), the allowed networks
and token managers, trusted proxies, the client and upstream timeouts, the
upstream connections one client may hold, and the TLS certificate
(re-read from its files, for renewals; new connections get it).
"""

from __future__ import annotations

import dataclasses
import logging
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import Config, load_config
from .errors import ConfigError
from .live import Live, settings_of

log = logging.getLogger("apitokenproxy")

LIVE = (
    "logging.level",
    "logging.access_log",
    "logging.format",
    "auth.throttle.",
    "auth.allowed_networks",
    "auth.token_manager_groups",
    "tokens.",
    "proxy.trusted_proxies",
    "listen.header_timeout_seconds",
    "listen.keepalive_timeout_seconds",
    "listen.body_timeout_seconds",
    "listen.body_min_rate",
    "listen.send_timeout_seconds",
    "upstream.max_connections_per_client",
    "upstream.connect_timeout_seconds",
    "upstream.read_timeout_seconds",
    "listen.tls.",
)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for field in dataclasses.fields(value):
            out.update(flatten(getattr(value, field.name), f"{prefix}{field.name}."))
        return out
    return {prefix.rstrip("."): value}


def changes(old: Config, new: Config) -> list[str]:
    """The keys whose values differ, as ``section.key`` paths."""
    before, after = flatten(old), flatten(new)
    return sorted(key for key in after if before.get(key) != after[key])


def split(changed: list[str]) -> tuple[list[str], list[str]]:
    """(applied live, needing a restart)."""
    live = [
        k for k in changed if any(k == p or (p.endswith(".") and k.startswith(p)) for p in LIVE)
    ]
    return live, [k for k in changed if k not in live]


class Reloader:
    def __init__(
        self, path: str | Path, config: Config, live: Live, tls: ssl.SSLContext | None
    ) -> None:
        """Reload ``path``, running now as ``config``, into ``live``; ``tls`` is the
        listening socket's context (None without TLS), its certificate re-read."""
        self._path = path
        self._live = live
        self._tls = tls
        self.config = config

    def reload(self, environ: Mapping[str, str] | None = None) -> bool:
        """Apply the file as it is now; False (and the old configuration kept) if invalid."""
        try:
            new = load_config(self._path, environ)
        except ConfigError as exc:
            log.error(
                "SIGHUP: %s is invalid, the running configuration stays: %s",
                self._path,
                "; ".join(exc.problems),
            )
            return False
        live, restart = split(changes(self.config, new))
        try:
            self._apply(new)
        except (OSError, ssl.SSLError) as exc:
            log.error("SIGHUP: cannot load the new TLS certificate, keeping the old one: %s", exc)
            return False
        self.config = new
        if live:
            log.warning("SIGHUP: applied %s", ", ".join(live))
        if restart:
            log.warning("SIGHUP: restart to apply %s", ", ".join(restart))
        if not live and not restart:
            log.warning("SIGHUP: the configuration is unchanged")
        return True

    def _apply(self, new: Config) -> None:
        tls = new.listen.tls
        if self._tls is not None and tls.cert_file:
            self._tls.load_cert_chain(tls.cert_file, tls.key_file)
        # A process-wide setting, kept by the logging module rather than a component.
        settings = settings_of(new)
        logging.getLogger().setLevel(settings.log_level)
        self._live.swap(settings)
