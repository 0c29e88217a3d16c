"""The production header rewrite (``headers.Injection.rewrite``), seen through a test's eyes.

Tests of what is stripped and kept call the same code both lanes call; this
only fixes the request's view and id and leaves out the forwarding headers the
proxy always adds (tested on their own in test_headers.py).
"""

from __future__ import annotations

from apitokenproxy.ops.requestid import HEADER as REQUEST_ID
from apitokenproxy.proxy.client import ClientView
from apitokenproxy.proxy.headers import Headers, Injection

VIEW = ClientView("198.51.100.7", "http", "jira.example.com", "198.51.100.7")
_ADDED = frozenset({"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", REQUEST_ID.lower()})


def rewritten(
    headers: Headers,
    *,
    user_header: str = "X-Forwarded-User",
    secret_header: str = "",
    user_name: str | None = None,
    strip_authorization: bool = False,
) -> Headers:
    """What ``Injection.rewrite`` sends upstream, without the four headers it always adds."""
    injection = Injection(
        user_header=user_header,
        identity_headers=tuple(h for h in (user_header, secret_header) if h),
        secret=(),
    )
    out = injection.rewrite(
        headers,
        VIEW,
        user_name=user_name,
        strip_authorization=strip_authorization,
        request_id="r" * 16,
    )
    return [(k, v) for k, v in out if k.lower() not in _ADDED]
