"""Configuration: YAML parsed once into frozen, typed objects.

The dataclasses below are the single place where every key and its default is
named. ``load_config`` rejects unknown keys, checks every type and range, and
reports all problems at once, each with its key path (``upstream.product: ...``).
Strings may use ``${ENV_VAR}`` so secrets stay out of the file; ``$$`` is a
literal dollar sign.
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

from .errors import ConfigError
from .networks import parse_network

Check = Callable[[Any], str | None]


def _check(fn: Check) -> dict[str, Check]:
    return {"check": fn}


def _positive(value: float) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _not_negative(value: float) -> str | None:
    return None if value >= 0 else "must be 0 or greater"


def _port(value: int) -> str | None:
    return None if 0 <= value <= 65535 else "must be a port number between 0 and 65535"


def _http_url(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host name"
    if parts.query or parts.fragment:
        return "must not have a query or fragment"
    return None


def _optional_http_url(value: str) -> str | None:
    return None if value == "" else _http_url(value)


_TOKEN_CHARS = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def _header_name(value: str) -> str | None:
    return None if _TOKEN_CHARS.match(value) else "must be a valid HTTP header name"


def _optional_header_name(value: str) -> str | None:
    return None if value == "" else _header_name(value)


def _store_url(value: str) -> str | None:
    if value.startswith("sqlite:///") and len(value) > len("sqlite:///"):
        return None
    if value.startswith(("postgresql://", "postgres://")):
        return None
    return (
        "must be sqlite:////ABSOLUTE/PATH, sqlite:///RELATIVE/PATH (to the config file's "
        "folder) or postgresql://user:pass@host:port/db"
    )


def _networks(value: tuple[str, ...]) -> str | None:
    bad = []
    for item in value:
        try:
            parse_network(item)
        except ValueError:
            bad.append(item)
    return f"not IP networks: {', '.join(bad)}" if bad else None


def _not_empty(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def _warn_days(value: tuple[int, ...]) -> str | None:
    if any(day <= 0 for day in value):
        return "every day count must be greater than 0"
    return None if len(set(value)) == len(value) else "must not repeat a day count"


_PAGES_PATH = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")


def _pages_path(value: str) -> str | None:
    if not _PAGES_PATH.match(value):
        return "must be a path like /apitokens: segments of letters, digits, . _ ~ -"
    if value.lower().startswith(("/rest/", "/__apitokenproxy", "/plugins/", "/secure/")):
        return "must not be under a path Jira, Confluence or the proxy already uses"
    return None


def _log_level(value: str) -> str | None:
    levels = ("DEBUG", "INFO", "WARNING", "ERROR")
    return None if value.upper() in levels else f"must be one of {', '.join(levels)}"


@dataclass(frozen=True)
class TlsConfig:
    # PEM files; both empty means the proxy listens in plain HTTP.
    cert_file: str = ""
    key_file: str = ""


@dataclass(frozen=True)
class ListenConfig:
    host: str = "0.0.0.0"  # noqa: S104 - a gateway listens on all interfaces by default
    port: int = field(default=8080, metadata=_check(_port))
    # Worker processes sharing the port through SO_REUSEPORT; 0 means one per
    # CPU this process may run on (its affinity, so containers pinned to fewer
    # CPUs than the host get as many workers as they have).
    workers: int = field(default=0, metadata=_check(_not_negative))
    # A client must send a complete request head this soon after connecting
    # (slow-loris), and may stay idle this long between requests.
    header_timeout_seconds: float = field(default=30.0, metadata=_check(_positive))
    keepalive_timeout_seconds: float = field(default=75.0, metadata=_check(_positive))
    # A request body must keep coming: at most this long between two reads, and
    # after the first body_timeout_seconds at least body_min_rate bytes a second
    # on average (0: no minimum), else 408 and the connection closes (nginx's
    # client_body_timeout, Apache's RequestReadTimeout MinRate).
    body_timeout_seconds: float = field(default=60.0, metadata=_check(_positive))
    body_min_rate: int = field(default=500, metadata=_check(_not_negative))
    # A client must keep reading its answer: one that takes none of it for this
    # long is cut off, and the upstream connection it held is freed.
    send_timeout_seconds: float = field(default=60.0, metadata=_check(_positive))
    # The URL clients use to reach the proxy (context path included); used for
    # the absolute links in tokensByFilter. Empty: taken from each request.
    public_url: str = field(default="", metadata=_check(_optional_http_url))
    tls: TlsConfig = TlsConfig()


@dataclass(frozen=True)
class UpstreamConfig:
    url: str = field(metadata=_check(_http_url))
    product: Literal["jira", "confluence"] = "jira"
    user_header: str = field(default="X-Forwarded-User", metadata=_check(_header_name))
    # How a user name travels in that header. Tomcat reads header bytes as
    # ISO-8859-1, so latin-1 is exact for every name it can spell; names
    # outside it need an authenticator that decodes utf-8 bytes or %XX.
    user_header_encoding: Literal["latin-1", "utf-8", "percent"] = "latin-1"
    # An optional second header the upstream's authenticator can check, so that
    # the user header alone is not enough even if the upstream port is reachable.
    shared_secret_header: str = field(default="", metadata=_check(_optional_header_name))
    shared_secret: str = ""
    connect_timeout_seconds: float = field(default=10.0, metadata=_check(_positive))
    # Time allowed between two reads from the upstream; long Jira exports
    # stream slowly but steadily, so there is no limit on the total.
    read_timeout_seconds: float = field(default=300.0, metadata=_check(_positive))
    # Total time for the proxy's own REST calls (password check, permissions).
    identity_timeout_seconds: float = field(default=10.0, metadata=_check(_positive))
    max_connections: int = field(default=256, metadata=_check(_positive))
    # Of those, at most this many in use for one client address at once (0: no
    # cap), so slow clients at one address cannot hold them all. Behind a load
    # balancer, list it in proxy.trusted_proxies, or every client shares its address.
    max_connections_per_client: int = field(default=64, metadata=_check(_not_negative))
    # For an https:// upstream: a PEM bundle of the CAs to trust (empty: the
    # system's), and whether to check its certificate at all.
    ca_file: str = ""
    verify_tls: bool = True


@dataclass(frozen=True)
class StoreConfig:
    url: str = field(
        default="sqlite:////var/lib/apitokenproxy/tokens.db", metadata=_check(_store_url)
    )
    busy_timeout_seconds: float = field(default=5.0, metadata=_check(_positive))
    # Pool size for PostgreSQL; SQLite uses one connection per process.
    pool_size: int = field(default=10, metadata=_check(_positive))


@dataclass(frozen=True)
class ThrottleConfig:
    # Failed token attempts allowed per client address and per user name in one window.
    max_failures: int = field(default=10, metadata=_check(_positive))
    window_seconds: int = field(default=60, metadata=_check(_positive))
    # Bound on the addresses and names remembered; the oldest are forgotten first.
    max_tracked: int = field(default=100_000, metadata=_check(_positive))


@dataclass(frozen=True)
class AuthConfig:
    allow_password_basic_auth: bool = True
    # User keys treated as sysadmins in addition to what the upstream says.
    admin_user_keys: tuple[str, ...] = ()
    # Confluence groups whose members are sysadmins (Jira asks SYSTEM_ADMIN instead).
    admin_groups: tuple[str, ...] = ("confluence-administrators",)
    # How long a password the upstream accepted, and a sysadmin answer, are reused.
    password_cache_seconds: int = field(default=60, metadata=_check(_not_negative))
    # How long the upstream's answer about a browser session cookie is reused:
    # logging out of Jira or Confluence ends access to the token API within it.
    session_cache_seconds: int = field(default=30, metadata=_check(_not_negative))
    # How long a verified token is trusted without asking the store again.
    token_cache_seconds: int = field(default=300, metadata=_check(_positive))
    token_cache_size: int = field(default=10_000, metadata=_check(_positive))
    # Threads hashing with argon2, and how many verifications may wait for them.
    hash_workers: int = field(default=2, metadata=_check(_positive))
    max_pending_verifications: int = field(default=64, metadata=_check(_positive))
    throttle: ThrottleConfig = ThrottleConfig()
    # Token and password Basic logins are accepted only from these networks
    # (the client address as proxy.trusted_proxies decides it); empty: from
    # anywhere. Sessions and anonymous requests are not affected.
    allowed_networks: tuple[str, ...] = field(default=(), metadata=_check(_networks))
    # Members of these upstream groups may list every token, create tokens for
    # others and revoke anyone's, as a sysadmin may.
    token_manager_groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class GroupLimit:
    """The validity a group's members may give their tokens."""

    group: str = field(metadata=_check(_not_empty))
    # Longest validity in months; 0 = no limit.
    max_validity_months: int = field(default=0, metadata=_check(_not_negative))
    # Whether members may hold tokens that never expire.
    allow_never_expires: bool = False


@dataclass(frozen=True)
class TokensConfig:
    # Months of validity when a request gives none; 0 = tokens never expire.
    default_validity_months: int = field(default=6, metadata=_check(_not_negative))
    # Longest validity allowed; 0 = no limit. Longer requests are capped.
    max_validity_months: int = field(default=12, metadata=_check(_not_negative))
    max_description_length: int = field(default=255, metadata=_check(_positive))
    # Longest time a rotated token's old secret keeps working, in seconds; a
    # rotation asks for a grace up to this (absent: one day, or this if less).
    # 0 = the old secret stops at once.
    max_rotation_grace_seconds: int = field(default=86_400, metadata=_check(_not_negative))
    # Tokens one user may hold; 0 = no limit (Atlassian's personal access tokens stop at 10).
    max_per_user: int = field(default=0, metadata=_check(_not_negative))
    # False: a token cannot create or delete tokens, so a leaked one cannot renew itself.
    tokens_may_manage_tokens: bool = True
    # Only members of these upstream groups may hold tokens; empty: everyone.
    allowed_groups: tuple[str, ...] = ()
    # Per-group validity; a user in several listed groups gets the longest.
    group_limits: tuple[GroupLimit, ...] = ()


@dataclass(frozen=True)
class ProxyConfig:
    # Peers whose X-Forwarded-For/-Proto/-Host are believed (a load balancer).
    trusted_proxies: tuple[str, ...] = field(default=(), metadata=_check(_networks))
    # Largest request body forwarded, in MiB; 0 = no limit.
    max_request_body_mb: int = field(default=0, metadata=_check(_not_negative))
    # How often lastAccessed times are written to the store.
    last_accessed_flush_seconds: float = field(default=10.0, metadata=_check(_positive))
    # Serve plain keep-alive requests below aiohttp, parsed by llhttp (see
    # proxy/fastlane.py); false sends every request through aiohttp.
    fast_path: bool = True


@dataclass(frozen=True)
class PagesConfig:
    # The browser pages "My API tokens" and "Token manager" (docs/pages.md).
    enabled: bool = True
    # Where they are served, under the upstream's context path; Jira and
    # Confluence use nothing below /apitokens.
    path: str = field(default="/apitokens", metadata=_check(_pages_path))


@dataclass(frozen=True)
class LoggingConfig:
    level: str = field(default="INFO", metadata=_check(_log_level))
    access_log: bool = True
    # The access log's lines: text (key=value, fixed order) or json (one object a line).
    format: Literal["text", "json"] = "text"


@dataclass(frozen=True)
class MetricsConfig:
    # GET /__apitokenproxy/metrics, in the Prometheus text format.
    enabled: bool = True
    # Peers (the connecting address, never X-Forwarded-For) that may read it.
    allow: tuple[str, ...] = field(default=("127.0.0.1/32", "::1/128"), metadata=_check(_networks))
    # Serve the metrics on this port of listen.host instead of the proxy's own
    # (0: on the proxy's port). The allow-list applies on either.
    port: int = field(default=0, metadata=_check(_port))


@dataclass(frozen=True)
class SmtpConfig:
    # Empty: no e-mail is sent.
    host: str = ""
    port: int = field(default=25, metadata=_check(_port))
    # none: plain SMTP; starttls: upgrade after connecting; tls: TLS from the start.
    security: Literal["none", "starttls", "tls"] = "starttls"
    # Both empty: no SMTP login. Use ${ENV_VAR} for the password.
    user: str = ""
    password: str = ""
    sender: str = "apitokenproxy@localhost"
    timeout_seconds: float = field(default=30.0, metadata=_check(_positive))
    # A PEM bundle of the CAs to trust for the server's certificate; empty: the system's.
    ca_file: str = ""


@dataclass(frozen=True)
class WebhookConfig:
    # Empty: no webhook. Each warning is POSTed here as JSON.
    url: str = field(default="", metadata=_check(_optional_http_url))
    # Key of the HMAC-SHA256 signature over "timestamp.body"; use ${ENV_VAR}.
    secret: str = ""
    timeout_seconds: float = field(default=10.0, metadata=_check(_positive))


@dataclass(frozen=True)
class NotifyConfig:
    # Warn owners this many days before a token expires, once per token and count.
    warn_days: tuple[int, ...] = field(default=(14, 3), metadata=_check(_warn_days))
    # How often each process looks for tokens due a warning.
    interval_seconds: float = field(default=3600.0, metadata=_check(_positive))
    # A failed warning is retried after retry_seconds, doubling each time,
    # until max_attempts have failed.
    retry_seconds: float = field(default=60.0, metadata=_check(_positive))
    max_attempts: int = field(default=5, metadata=_check(_positive))
    smtp: SmtpConfig = SmtpConfig()
    webhook: WebhookConfig = WebhookConfig()

    @property
    def enabled(self) -> bool:
        return bool(self.smtp.host or self.webhook.url)


@dataclass(frozen=True)
class AuditConfig:
    # Days an audit event is kept; older ones are pruned in batches, hourly.
    retention_days: int = field(default=365, metadata=_check(_positive))


@dataclass(frozen=True)
class Config:
    upstream: UpstreamConfig
    listen: ListenConfig = ListenConfig()
    store: StoreConfig = StoreConfig()
    auth: AuthConfig = AuthConfig()
    tokens: TokensConfig = TokensConfig()
    proxy: ProxyConfig = ProxyConfig()
    pages: PagesConfig = PagesConfig()
    logging: LoggingConfig = LoggingConfig()
    notify: NotifyConfig = NotifyConfig()
    metrics: MetricsConfig = MetricsConfig()
    audit: AuditConfig = AuditConfig()


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate a YAML file; raise ConfigError listing every problem.

    A relative SQLite path is resolved against the file's folder, so every
    command given the same file opens the same database, wherever it runs.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from exc
    return parse_config(text, environ, base=Path(path).resolve().parent)


def parse_config(
    text: str, environ: Mapping[str, str] | None = None, *, base: Path | None = None
) -> Config:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {exc}"]) from exc
    return config_from_dict({} if data is None else data, environ, base=base)


def config_from_dict(
    data: Any, environ: Mapping[str, str] | None = None, *, base: Path | None = None
) -> Config:
    """Validate a mapping; relative SQLite paths resolve against ``base`` (default:
    the current directory)."""
    problems: list[str] = []
    env = os.environ if environ is None else environ
    config = _build(Config, data, "", problems, env)
    if config is not None:
        problems.extend(_cross_checks(config))
    if problems or config is None:
        raise ConfigError(problems)
    built = typing.cast(Config, config)
    url = resolve_store_url(built.store.url, base or Path.cwd())
    return dataclasses.replace(built, store=dataclasses.replace(built.store, url=url))


def resolve_store_url(url: str, base: Path) -> str:
    """SQLAlchemy's convention: ``sqlite:////abs`` is absolute, ``sqlite:///rel`` is
    relative, here to ``base``; the answer is always absolute (or ``:memory:``)."""
    if not url.startswith("sqlite:///"):
        return url
    path = url.removeprefix("sqlite:///")
    if path == ":memory:" or path.startswith("/"):
        return url
    return "sqlite:///" + str((base / path).resolve())


def _cross_checks(config: Config) -> list[str]:
    problems = []
    tokens = config.tokens
    if tokens.max_validity_months and not (
        0 < tokens.default_validity_months <= tokens.max_validity_months
    ):
        problems.append(
            "tokens.default_validity_months: must be between 1 and "
            f"tokens.max_validity_months ({tokens.max_validity_months})"
        )
    up = config.upstream
    if bool(up.shared_secret_header) != bool(up.shared_secret):
        problems.append(
            "upstream.shared_secret: shared_secret and shared_secret_header must be set together"
        )
    if up.user_header.lower() in ("authorization", "host", "cookie", "connection"):
        problems.append(f"upstream.user_header: {up.user_header} cannot carry the user name")
    smtp = config.notify.smtp
    if bool(smtp.user) != bool(smtp.password):
        problems.append("notify.smtp: user and password must be set together")
    webhook = config.notify.webhook
    if webhook.url and not webhook.secret:
        problems.append("notify.webhook.secret: is required with notify.webhook.url")
    if config.metrics.port and config.metrics.port == config.listen.port:
        problems.append("metrics.port: must differ from listen.port (or be 0 to share it)")
    tls = config.listen.tls
    if bool(tls.cert_file) != bool(tls.key_file):
        problems.append("listen.tls: cert_file and key_file must be set together")
    for key, path in (
        ("listen.tls.cert_file", tls.cert_file),
        ("listen.tls.key_file", tls.key_file),
        ("upstream.ca_file", up.ca_file),
        ("notify.smtp.ca_file", smtp.ca_file),
    ):
        if path and not os.access(path, os.R_OK):
            problems.append(f"{key}: cannot read {path}")
    return problems


_ENV = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _interpolate(value: str, path: str, problems: list[str], env: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        if name not in env:
            problems.append(f"{path}: environment variable {name} is not set")
            return ""
        return env[name]

    return _ENV.sub(replace, value)


def _describe(value: Any) -> str:
    return type(value).__name__ if value is not None else "null"


def _build(
    cls: type[Any], data: Any, path: str, problems: list[str], env: Mapping[str, str]
) -> Any:
    """Build dataclass ``cls`` from ``data``; record problems instead of stopping at the first."""
    where = path or "the top level"
    if not isinstance(data, dict):
        problems.append(f"{where}: must be a mapping, not {_describe(data)}")
        return None
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            choices = ", ".join(sorted(known))
            problems.append(f"{path + '.' if path else ''}{key}: unknown key (known: {choices})")
    values: dict[str, Any] = {}
    for name, fld in known.items():
        key_path = f"{path}.{name}" if path else name
        if name not in data:
            if fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING:
                problems.append(f"{key_path}: is required")
            continue
        reported = len(problems)
        value = _convert(hints[name], data[name], key_path, problems, env)
        if value is _INVALID or len(problems) > reported:
            continue
        check = fld.metadata.get("check")
        message = check(value) if check else None
        if message:
            problems.append(f"{key_path}: {message}")
            continue
        values[name] = value
    try:
        return cls(**values)
    except TypeError:
        return None  # a required key is missing; already reported


_INVALID = object()


def _convert(hint: Any, value: Any, path: str, problems: list[str], env: Mapping[str, str]) -> Any:
    if dataclasses.is_dataclass(hint):
        built = _build(typing.cast(type[Any], hint), value, path, problems, env)
        return _INVALID if built is None else built
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value in choices:
            return value
        problems.append(f"{path}: must be one of {', '.join(map(str, choices))}, not {value!r}")
        return _INVALID
    if origin is tuple:
        item_hint = typing.get_args(hint)[0]
        items = [value] if isinstance(value, str | int | dict) else value
        if not isinstance(items, list):
            problems.append(f"{path}: must be a list, not {_describe(value)}")
            return _INVALID
        out = []
        for i, item in enumerate(items):
            if item_hint is str and not isinstance(item, str):
                problems.append(f"{path}[{i}]: must be a string, not {_describe(item)}")
                return _INVALID
            converted = _convert(item_hint, item, f"{path}[{i}]", problems, env)
            if converted is _INVALID:
                return _INVALID
            out.append(converted)
        return tuple(out)
    if hint is bool:
        if isinstance(value, bool):
            return value
        problems.append(f"{path}: must be true or false, not {value!r}")
        return _INVALID
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        problems.append(f"{path}: must be a whole number, not {value!r}")
        return _INVALID
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        problems.append(f"{path}: must be a number, not {value!r}")
        return _INVALID
    if hint is str:
        if isinstance(value, str):
            return _interpolate(value, path, problems, env)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        problems.append(f"{path}: must be a string, not {_describe(value)}")
        return _INVALID
    raise TypeError(f"unsupported config type {hint!r} at {path}")  # a bug in this module


__all__ = [
    "AuthConfig",
    "Config",
    "ConfigError",
    "GroupLimit",
    "ListenConfig",
    "LoggingConfig",
    "MetricsConfig",
    "NotifyConfig",
    "ProxyConfig",
    "SmtpConfig",
    "StoreConfig",
    "ThrottleConfig",
    "TokensConfig",
    "UpstreamConfig",
    "WebhookConfig",
    "config_from_dict",
    "load_config",
    "parse_config",
]
