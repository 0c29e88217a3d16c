"""Every configuration key and its default: frozen, typed dataclasses, one per section.

This is the single place where a key is named. Each field's metadata names the
rule its value must keep (``config/checks.py``); ``config/loading.py`` builds
these from YAML and checks them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .checks import (
    a_header_name,
    a_log_level,
    a_pages_path,
    a_port,
    a_store_url,
    an_http_url,
    checked,
    distinct_positive_days,
    ip_networks,
    not_empty,
    not_negative,
    optional_header_name,
    optional_http_url,
    positive,
)


@dataclass(frozen=True)
class TlsConfig:
    # PEM files; both empty means the proxy listens in plain HTTP.
    cert_file: str = ""
    key_file: str = ""


@dataclass(frozen=True)
class ListenConfig:
    host: str = "0.0.0.0"  # noqa: S104 - a gateway listens on all interfaces by default
    port: int = field(default=8080, metadata=checked(a_port))
    # Worker processes sharing the port through SO_REUSEPORT; 0 means one per
    # CPU this process may run on (its affinity, so containers pinned to fewer
    # CPUs than the host get as many workers as they have).
    workers: int = field(default=0, metadata=checked(not_negative))
    # A client must send a complete request head this soon after connecting
    # (slow-loris), and may stay idle this long between requests.
    header_timeout_seconds: float = field(default=30.0, metadata=checked(positive))
    keepalive_timeout_seconds: float = field(default=75.0, metadata=checked(positive))
    # A request body must keep coming: at most this long between two reads, and
    # after the first body_timeout_seconds at least body_min_rate bytes a second
    # on average (0: no minimum), else 408 and the connection closes (nginx's
    # client_body_timeout, Apache's RequestReadTimeout MinRate).
    body_timeout_seconds: float = field(default=60.0, metadata=checked(positive))
    body_min_rate: int = field(default=500, metadata=checked(not_negative))
    # A client must keep reading its answer: one that takes none of it for this
    # long is cut off, and the upstream connection it held is freed.
    send_timeout_seconds: float = field(default=60.0, metadata=checked(positive))
    # The URL clients use to reach the proxy (context path included); used for
    # the absolute links in tokensByFilter. Empty: taken from each request.
    public_url: str = field(default="", metadata=checked(optional_http_url))
    tls: TlsConfig = TlsConfig()


@dataclass(frozen=True)
class UpstreamConfig:
    url: str = field(metadata=checked(an_http_url))
    product: Literal["jira", "confluence"] = "jira"
    user_header: str = field(default="X-Forwarded-User", metadata=checked(a_header_name))
    # How a user name travels in that header. Tomcat reads header bytes as
    # ISO-8859-1, so latin-1 is exact for every name it can spell; names
    # outside it need an authenticator that decodes utf-8 bytes or %XX.
    user_header_encoding: Literal["latin-1", "utf-8", "percent"] = "latin-1"
    # An optional second header the upstream's authenticator can check, so that
    # the user header alone is not enough even if the upstream port is reachable.
    shared_secret_header: str = field(default="", metadata=checked(optional_header_name))
    shared_secret: str = ""
    connect_timeout_seconds: float = field(default=10.0, metadata=checked(positive))
    # Time allowed between two reads from the upstream; long Jira exports
    # stream slowly but steadily, so there is no limit on the total.
    read_timeout_seconds: float = field(default=300.0, metadata=checked(positive))
    # Total time for the proxy's own REST calls (password check, permissions).
    identity_timeout_seconds: float = field(default=10.0, metadata=checked(positive))
    max_connections: int = field(default=256, metadata=checked(positive))
    # Of those, at most this many in use for one client address at once (0: no
    # cap), so slow clients at one address cannot hold them all. Behind a load
    # balancer, list it in proxy.trusted_proxies, or every client shares its address.
    max_connections_per_client: int = field(default=64, metadata=checked(not_negative))
    # For an https:// upstream: a PEM bundle of the CAs to trust (empty: the
    # system's), and whether to check its certificate at all.
    ca_file: str = ""
    verify_tls: bool = True


@dataclass(frozen=True)
class StoreConfig:
    url: str = field(
        default="sqlite:////var/lib/apitokenproxy/tokens.db", metadata=checked(a_store_url)
    )
    busy_timeout_seconds: float = field(default=5.0, metadata=checked(positive))
    # Pool size for PostgreSQL; SQLite uses one connection per process.
    pool_size: int = field(default=10, metadata=checked(positive))


@dataclass(frozen=True)
class ThrottleConfig:
    # Failed token attempts allowed per client address and per user name in one window.
    max_failures: int = field(default=10, metadata=checked(positive))
    window_seconds: int = field(default=60, metadata=checked(positive))
    # Bound on the addresses and names remembered; the oldest are forgotten first.
    max_tracked: int = field(default=100_000, metadata=checked(positive))


@dataclass(frozen=True)
class AuthConfig:
    allow_password_basic_auth: bool = True
    # User keys treated as sysadmins in addition to what the upstream says.
    admin_user_keys: tuple[str, ...] = ()
    # Confluence groups whose members are sysadmins (Jira asks SYSTEM_ADMIN instead).
    admin_groups: tuple[str, ...] = ("confluence-administrators",)
    # How long a password the upstream accepted, and a sysadmin answer, are reused.
    password_cache_seconds: int = field(default=60, metadata=checked(not_negative))
    # How long the upstream's answer about a browser session cookie is reused:
    # logging out of Jira or Confluence ends access to the token API within it.
    session_cache_seconds: int = field(default=30, metadata=checked(not_negative))
    # How long a verified token is trusted without asking the store again.
    token_cache_seconds: int = field(default=300, metadata=checked(positive))
    token_cache_size: int = field(default=10_000, metadata=checked(positive))
    # Threads hashing with argon2, and how many verifications may wait for them.
    hash_workers: int = field(default=2, metadata=checked(positive))
    max_pending_verifications: int = field(default=64, metadata=checked(positive))
    throttle: ThrottleConfig = ThrottleConfig()
    # Token and password Basic logins are accepted only from these networks
    # (the client address as proxy.trusted_proxies decides it); empty: from
    # anywhere. Sessions and anonymous requests are not affected.
    allowed_networks: tuple[str, ...] = field(default=(), metadata=checked(ip_networks))
    # Members of these upstream groups may list every token, create tokens for
    # others and revoke anyone's, as a sysadmin may.
    token_manager_groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class GroupLimit:
    """The validity a group's members may give their tokens."""

    group: str = field(metadata=checked(not_empty))
    # Longest validity in months; 0 = no limit.
    max_validity_months: int = field(default=0, metadata=checked(not_negative))
    # Whether members may hold tokens that never expire.
    allow_never_expires: bool = False


@dataclass(frozen=True)
class TokensConfig:
    # Months of validity when a request gives none; 0 = tokens never expire.
    default_validity_months: int = field(default=6, metadata=checked(not_negative))
    # Longest validity allowed; 0 = no limit. Longer requests are capped.
    max_validity_months: int = field(default=12, metadata=checked(not_negative))
    max_description_length: int = field(default=255, metadata=checked(positive))
    # Longest time a rotated token's old secret keeps working, in seconds; a
    # rotation asks for a grace up to this (absent: one day, or this if less).
    # 0 = the old secret stops at once.
    max_rotation_grace_seconds: int = field(default=86_400, metadata=checked(not_negative))
    # Tokens one user may hold; 0 = no limit (Atlassian's personal access tokens stop at 10).
    max_per_user: int = field(default=0, metadata=checked(not_negative))
    # False: a token cannot create or delete tokens, so a leaked one cannot renew itself.
    tokens_may_manage_tokens: bool = True
    # Only members of these upstream groups may hold tokens; empty: everyone.
    allowed_groups: tuple[str, ...] = ()
    # Per-group validity; a user in several listed groups gets the longest.
    group_limits: tuple[GroupLimit, ...] = ()


@dataclass(frozen=True)
class ProxyConfig:
    # Peers whose X-Forwarded-For/-Proto/-Host are believed (a load balancer).
    trusted_proxies: tuple[str, ...] = field(default=(), metadata=checked(ip_networks))
    # Largest request body forwarded, in MiB; 0 = no limit.
    max_request_body_mb: int = field(default=0, metadata=checked(not_negative))
    # How often lastAccessed times are written to the store.
    last_accessed_flush_seconds: float = field(default=10.0, metadata=checked(positive))
    # Serve plain keep-alive requests below aiohttp, parsed by llhttp (see
    # proxy/fastlane.py); false sends every request through aiohttp.
    fast_path: bool = True


@dataclass(frozen=True)
class PagesConfig:
    # The browser pages "My API tokens" and "Token manager" (docs/pages.md).
    enabled: bool = True
    # Where they are served, under the upstream's context path; Jira and
    # Confluence use nothing below /apitokens.
    path: str = field(default="/apitokens", metadata=checked(a_pages_path))


@dataclass(frozen=True)
class LoggingConfig:
    level: str = field(default="INFO", metadata=checked(a_log_level))
    access_log: bool = True
    # The access log's lines: text (key=value, fixed order) or json (one object a line).
    format: Literal["text", "json"] = "text"


@dataclass(frozen=True)
class MetricsConfig:
    # GET /__apitokenproxy/metrics, in the Prometheus text format.
    enabled: bool = True
    # Peers (the connecting address, never X-Forwarded-For) that may read it.
    allow: tuple[str, ...] = field(
        default=("127.0.0.1/32", "::1/128"), metadata=checked(ip_networks)
    )
    # Serve the metrics on this port of listen.host instead of the proxy's own
    # (0: on the proxy's port). The allow-list applies on either.
    port: int = field(default=0, metadata=checked(a_port))


@dataclass(frozen=True)
class SmtpConfig:
    # Empty: no e-mail is sent.
    host: str = ""
    port: int = field(default=25, metadata=checked(a_port))
    # none: plain SMTP; starttls: upgrade after connecting; tls: TLS from the start.
    security: Literal["none", "starttls", "tls"] = "starttls"
    # Both empty: no SMTP login. Use ${ENV_VAR} for the password.
    user: str = ""
    password: str = ""
    sender: str = "apitokenproxy@localhost"
    timeout_seconds: float = field(default=30.0, metadata=checked(positive))
    # A PEM bundle of the CAs to trust for the server's certificate; empty: the system's.
    ca_file: str = ""


@dataclass(frozen=True)
class WebhookConfig:
    # Empty: no webhook. Each warning is POSTed here as JSON.
    url: str = field(default="", metadata=checked(optional_http_url))
    # Key of the HMAC-SHA256 signature over "timestamp.body"; use ${ENV_VAR}.
    secret: str = ""
    timeout_seconds: float = field(default=10.0, metadata=checked(positive))


@dataclass(frozen=True)
class NotifyConfig:
    # Warn owners this many days before a token expires, once per token and count.
    warn_days: tuple[int, ...] = field(default=(14, 3), metadata=checked(distinct_positive_days))
    # How often each process looks for tokens due a warning.
    interval_seconds: float = field(default=3600.0, metadata=checked(positive))
    # A failed warning is retried after retry_seconds, doubling each time,
    # until max_attempts have failed.
    retry_seconds: float = field(default=60.0, metadata=checked(positive))
    max_attempts: int = field(default=5, metadata=checked(positive))
    smtp: SmtpConfig = SmtpConfig()
    webhook: WebhookConfig = WebhookConfig()

    @property
    def enabled(self) -> bool:
        return bool(self.smtp.host or self.webhook.url)


@dataclass(frozen=True)
class AuditConfig:
    # Days an audit event is kept; older ones are pruned in batches, hourly.
    retention_days: int = field(default=365, metadata=checked(positive))


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
