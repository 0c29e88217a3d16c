"""Every exception the package raises, in one tree, and the one JSON shape of its answers.

    ApitokenproxyError                  every exception of apitokenproxy
    ├── ConfigError                     the configuration is wrong: every problem, together
    ├── StartupError                    the proxy cannot start (a port, a certificate, the store)
    ├── NotificationFailed              an expiry warning could not be delivered
    ├── CredentialsError                credentials the proxy reads but cannot accept
    │   ├── MalformedCredentials        an Authorization header ours to read, but broken
    │   ├── MalformedToken              has the token prefix, but is not a valid token
    │   └── PasswordRejected            the upstream refused a user name and password
    ├── StoreError                      the token store refused what it was asked
    │   └── OwnerAtLimit                a new token would take its owner past the limit
    └── ProxyError                      any failure that becomes an HTTP answer
        ├── RequestError                4xx: the request cannot be served as sent
        │   ├── BadRequest       400    the request is malformed or a value is invalid
        │   ├── Unauthorized     401    missing, malformed or wrong credentials
        │   │   ├── InvalidToken        malformed, unknown, wrong, expired or not the user's
        │   │   └── NotFromHere         used outside its allowed networks (looks like a bad token)
        │   ├── Forbidden        403    authenticated, but not allowed
        │   │   ├── UnsendableUserName  the owner's name cannot travel in the user header
        │   │   ├── ScopeRefused        a read-scoped token asked to write
        │   │   ├── OutsideAllowedNetworks  a login from outside auth.allowed_networks
        │   │   └── UnsaidTarget        forward auth without the request's URI, where it matters
        │   ├── NotFound         404    no such resource (or not the caller's)
        │   ├── RequestTimeout   408    the request body arrived too slowly
        │   │   └── ClientTooSlow       the client stopped reading its answer (cut, never answered)
        │   ├── PayloadTooLarge  413    request body over the configured limit
        │   └── TooManyRequests  429    failed-attempt throttling
        ├── Unavailable                 503: the proxy itself cannot serve now
        │   ├── StoreUnavailable 503    the token store cannot be used right now
        │   └── Busy             503    too much argon2 work is already queued
        └── UpstreamError               the exchange with Jira/Confluence failed; ``label`` says how
            ├── TooManyInFlight  429    client_limit: the client's address holds its share
            ├── UpstreamBusy     503    pool_exhausted: every connection stayed in use too long
            ├── UpstreamUnavailable 502 Jira/Confluence cannot be used
            │   ├── UpstreamRefused     refused: no connection
            │   ├── UpstreamReset       reset: the connection ended before an answer
            │   └── UpstreamInvalid     invalid: an answer that is not usable HTTP
            └── UpstreamTimeout  504    timeout: Jira/Confluence did not answer in time

Exceptions from other libraries (aiohttp client errors, sqlite errors) are
translated into these once, where they enter: ``auth/identity.py`` for the
upstream's REST API, ``store/`` for the database, ``proxy/upstream.py`` for
forwarding.

An error that refuses a request's credentials carries a ``reason``, one word
from ``REASONS``, for the access log and the metrics: why, without parsing
the message. An ``UpstreamError`` carries a ``label``, the metrics' ``kind``
of upstream failure (``ops/metrics.py``, counted by ``proxy/upstream.py``).

The body is ``{"status", "error", "message", "errorMessages"}``. The
``errorMessages`` list is Jira's own error field, so Jira-aware clients
(``jira``, ``atlassian-python-api``) show our message as they would show Jira's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import ClassVar

from aiohttp import web

# Why authentication refused a request (the access log's ``reason``, the
# metrics' ``reason`` label). Never more than these: they are label values.
REASONS = (
    "missing",  # the token API needs credentials and got none
    "malformed",  # an Authorization header the proxy cannot read, or a token of the wrong shape
    "checksum",  # a token whose checksum does not match (mistyped, cut short)
    "unknown",  # no such token, or the wrong secret for its id
    "revoked",  # a token this worker saw revoked
    "expired",  # past its validity
    "wrong_owner",  # Basic user:TOKEN where the token is not that user's (name or e-mail)
    "rotated",  # the secret a rotation replaced, after its grace
    "network",  # a token used from outside its allowed addresses, or auth.allowed_networks
    "scope",  # a read-only token asked to write
    "password_rejected",  # the upstream refused a password (token API)
    "password_disabled",  # a password on the data path while auth.allow_password_basic_auth is off
    "uri_missing",  # forward auth: the front proxy did not say the request's URI, and it matters
    "scheme",  # a scheme the token API does not accept
    "throttled",  # 429: too many failures from this address or for this user name
    "busy",  # 503: too many argon2 checks already queued
)


class ApitokenproxyError(Exception):
    """The root: every exception apitokenproxy raises descends from this."""


class ConfigError(ApitokenproxyError):
    """The configuration has problems; ``problems`` lists every one with its key path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))
        self.problems = problems


class StartupError(ApitokenproxyError):
    """The server cannot start (a port in use, a store it cannot open): one line, no trace."""


class NotificationFailed(ApitokenproxyError):
    """A warning could not be delivered; ``reason`` is safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CredentialsError(ApitokenproxyError):
    """Credentials the proxy reads itself but cannot accept; callers turn it into a refusal."""


class MalformedCredentials(CredentialsError):
    """An Authorization header the proxy should understand but cannot."""


class MalformedToken(CredentialsError):
    """A string that claims to be a token (it has the prefix) but is not a valid one."""

    def __init__(self, message: str, *, checksum: bool = False) -> None:
        super().__init__(message)
        self.checksum = checksum  # the shape held, the checksum did not


class PasswordRejected(CredentialsError):
    """The upstream refused the credentials; ``reason`` is for the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StoreError(ApitokenproxyError):
    """The token store refused an operation it was able to do (unavailability is
    ``StoreUnavailable``, an answer)."""


class OwnerAtLimit(StoreError):
    """A new token would take its owner past the limit; ``count`` tokens exist."""

    def __init__(self, count: int) -> None:
        super().__init__(f"the owner already has {count} tokens")
        self.count = count


class ProxyError(ApitokenproxyError):
    """A failure with an HTTP status, a stable machine-readable code and a message for people."""

    status = 500
    code = "internal_error"
    # Set when the failure refuses the request's credentials (one of REASONS).
    reason: str | None = None
    # Whether the answer ends the connection (what is left of the request is unread).
    closes = False

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})

    def to_response(self) -> web.Response:
        return error_response(self.status, self.code, self.message, self.headers)


class RequestError(ProxyError):
    """4xx: the request cannot be served as it was sent."""


class BadRequest(RequestError):
    """The request is malformed or carries an invalid value."""

    status = 400
    code = "bad_request"


class UnservedVersion(BadRequest):
    """A request in a version of HTTP the proxy does not serve (0.9, 2 in clear text)."""

    closes = True


class MalformedRequest(BadRequest):
    """The request is not HTTP as the proxy reads it; nothing after it is read."""

    code = "malformed_request"
    closes = True


class Unauthorized(RequestError):
    """Credentials are missing, malformed or wrong; always carries ``WWW-Authenticate``."""

    status = 401
    code = "unauthorized"

    def __init__(
        self, message: str, *, reason: str = "malformed", realm: str = "apitokenproxy"
    ) -> None:
        # Both schemes are offered: curl -u sends Basic, integrations often Bearer.
        super().__init__(
            message,
            headers={"WWW-Authenticate": f'Basic realm="{realm}", Bearer realm="{realm}"'},
        )
        self.reason = reason


class InvalidToken(Unauthorized):
    """A token that is malformed, unknown, wrong, expired or not the named user's."""

    code = "invalid_token"


class NotFromHere(Unauthorized):
    """A token used from outside its allowed networks: answered as a bad token."""

    code = "invalid_token"


class Forbidden(RequestError):
    """The caller is known but lacks the permission the action needs."""

    status = 403
    code = "forbidden"


class UnsendableUserName(Forbidden):
    """The token is good, but its owner's name cannot be written in the user header."""

    code = "user_name_not_sendable"


class ScopeRefused(Forbidden):
    """A read-scoped token asked for more than reading."""

    code = "token_scope"
    reason = "scope"


class OutsideAllowedNetworks(Forbidden):
    """A token or password login from outside ``auth.allowed_networks``."""

    reason = "network"


class UnsaidTarget(Forbidden):
    """Forward auth without the client's request-target, where its query matters."""

    reason = "uri_missing"


class NotFound(RequestError):
    """No such resource, or one the caller may not know exists."""

    status = 404
    code = "not_found"


class RequestTimeout(RequestError):
    """The request body stalled, or arrived slower than ``listen.body_min_rate``."""

    status = 408
    code = "request_timeout"
    # The rest of the body is never read: the connection ends with this answer.
    closes = True


class ClientTooSlow(RequestTimeout):
    """The client took none of its answer for ``listen.send_timeout_seconds``: the
    answer has begun, so its connection is cut and the upstream connection freed."""


class PayloadTooLarge(RequestError):
    """The request body is over the configured limit."""

    status = 413
    code = "payload_too_large"


class TooManyRequests(RequestError):
    """Too many failed attempts from this address or for this user name."""

    status = 429
    code = "too_many_requests"
    reason = "throttled"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after))})
        self.retry_after = retry_after


class Unavailable(ProxyError):
    """503: the proxy itself cannot serve the request right now."""

    status = 503


class StoreUnavailable(Unavailable):
    """The token store is read-only, locked, full or unreachable."""

    code = "store_unavailable"


class Busy(Unavailable):
    """Too many token verifications are already waiting; the caller should retry shortly."""

    code = "busy"
    reason = "busy"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": "1"})


class UpstreamError(ProxyError):
    """The exchange with Jira/Confluence could not happen or failed.

    ``label`` is how, the value of the metrics' ``kind`` label
    (``apitokenproxy_upstream_errors_total``): one per concrete class.
    """

    label: ClassVar[str]


class TooManyInFlight(UpstreamError):
    """The client's address already has ``upstream.max_connections_per_client`` upstream
    connections in use; retry once one of its requests is answered."""

    status = 429
    code = "too_many_in_flight"
    label = "client_limit"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": "1"})


class UpstreamBusy(UpstreamError):
    """Every upstream connection this worker may open stayed in use; retry shortly."""

    status = 503
    code = "upstream_busy"
    label = "pool_exhausted"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": "1"})


class UpstreamUnavailable(UpstreamError):
    """Jira/Confluence could not be reached or answered something unusable; raise
    one of its subclasses, which say how."""

    status = 502
    code = "upstream_unavailable"


class UpstreamRefused(UpstreamUnavailable):
    """No connection: refused, unreachable, or TLS failed."""

    label = "refused"


class UpstreamReset(UpstreamUnavailable):
    """The connection ended before an answer."""

    label = "reset"


class UpstreamInvalid(UpstreamUnavailable):
    """An answer that is not usable HTTP, or not what the proxy's own call expects."""

    label = "invalid"


class UpstreamTimeout(UpstreamError):
    """Jira/Confluence did not answer within the configured time."""

    status = 504
    code = "upstream_timeout"
    label = "timeout"


def error_body(status: int, code: str, message: str) -> bytes:
    return json.dumps(
        {"status": status, "error": code, "message": message, "errorMessages": [message]}
    ).encode()


# Every answer the proxy makes itself says so, in both lanes, and no more
# (aiohttp would add its own name and version).
SERVER = "apitokenproxy"


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=error_body(status, code, message),
        content_type="application/json",
        headers={"Server": SERVER, **(headers or {})},
    )


def closing(response: web.Response) -> web.Response:
    """``response``, ending its connection and saying so (``Connection: close``), as the
    fast lane says it: what is left of the request is never read."""
    response.force_close()
    response.headers["Connection"] = "close"
    return response
