"""Every error the proxy answers with, and the one JSON shape they share.

    ProxyError                      any failure that becomes an HTTP answer
    ├── BadRequest           400    the request is malformed or a value is invalid
    ├── Unauthorized         401    missing, malformed or wrong credentials
    ├── Forbidden            403    authenticated, but not allowed
    │   └── UnsendableUserName 403  the owner's name cannot travel in the user header
    ├── NotFound             404    no such resource (or not the caller's)
    ├── RequestTimeout       408    the request body arrived too slowly
    │   └── ClientTooSlow    408    the client stopped reading its answer (cut, never answered)
    ├── PayloadTooLarge      413    request body over the configured limit
    ├── TooManyRequests      429    failed-attempt throttling
    ├── TooManyInFlight      429    the client's address holds its share of the upstream
    ├── StoreUnavailable     503    the token store cannot be used right now
    ├── Busy                 503    too much argon2 work is already queued
    ├── UpstreamBusy         503    every upstream connection stayed in use too long
    ├── UpstreamUnavailable  502    Jira/Confluence refused, reset or answered garbage
    └── UpstreamTimeout      504    Jira/Confluence did not answer in time

Exceptions from other libraries (aiohttp client errors, sqlite errors) are
translated into these once, where they enter: ``identity.py`` for the
upstream's REST API, ``store/`` for the database, ``proxy.py`` for forwarding.

An error that refuses a request's credentials carries a ``reason``, one word
from ``REASONS``, for the access log and the metrics: why, without parsing
the message.

The body is ``{"status", "error", "message", "errorMessages"}``. The
``errorMessages`` list is Jira's own error field, so Jira-aware clients
(``jira``, ``atlassian-python-api``) show our message as they would show Jira's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

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


class ProxyError(Exception):
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


class BadRequest(ProxyError):
    """The request is malformed or carries an invalid value."""

    status = 400
    code = "bad_request"


class MalformedRequest(BadRequest):
    """The request is not HTTP as the proxy reads it; nothing after it is read."""

    code = "malformed_request"
    closes = True


class Unauthorized(ProxyError):
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


class Forbidden(ProxyError):
    """The caller is known but lacks the permission the action needs."""

    status = 403
    code = "forbidden"


class UnsendableUserName(Forbidden):
    """The token is good, but its owner's name cannot be written in the user header."""

    code = "user_name_not_sendable"


class NotFound(ProxyError):
    """No such resource, or one the caller may not know exists."""

    status = 404
    code = "not_found"


class RequestTimeout(ProxyError):
    """The request body stalled, or arrived slower than ``listen.body_min_rate``."""

    status = 408
    code = "request_timeout"
    # The rest of the body is never read: the connection ends with this answer.
    closes = True


class ClientTooSlow(RequestTimeout):
    """The client took none of its answer for ``listen.send_timeout_seconds``: the
    answer has begun, so its connection is cut and the upstream connection freed."""


class PayloadTooLarge(ProxyError):
    """The request body is over the configured limit."""

    status = 413
    code = "payload_too_large"


class TooManyRequests(ProxyError):
    """Too many failed attempts from this address or for this user name."""

    status = 429
    code = "too_many_requests"
    reason = "throttled"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after))})
        self.retry_after = retry_after


class TooManyInFlight(ProxyError):
    """The client's address already has ``upstream.max_connections_per_client`` upstream
    connections in use; retry once one of its requests is answered."""

    status = 429
    code = "too_many_in_flight"
    kind = "client_limit"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": "1"})


class StoreUnavailable(ProxyError):
    """The token store is read-only, locked, full or unreachable."""

    status = 503
    code = "store_unavailable"


class Busy(ProxyError):
    """Too many token verifications are already waiting; the caller should retry shortly."""

    status = 503
    code = "busy"
    reason = "busy"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": "1"})


class UpstreamBusy(ProxyError):
    """Every upstream connection this worker may open stayed in use; retry shortly."""

    status = 503
    code = "upstream_busy"
    kind = "pool_exhausted"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": "1"})


class UpstreamUnavailable(ProxyError):
    """Jira/Confluence could not be reached or answered something unusable.

    ``kind`` (the metrics' label): ``refused`` (no connection), ``reset`` (the
    connection ended before an answer) or ``invalid`` (an answer that is not
    usable HTTP).
    """

    status = 502
    code = "upstream_unavailable"

    def __init__(self, message: str, *, kind: str = "invalid") -> None:
        super().__init__(message)
        self.kind = kind


class UpstreamTimeout(ProxyError):
    """Jira/Confluence did not answer within the configured time."""

    status = 504
    code = "upstream_timeout"
    kind = "timeout"


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
