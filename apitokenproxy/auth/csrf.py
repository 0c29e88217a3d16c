"""Cross-site request forgery: which session-authenticated calls may change state.

A browser attaches the upstream's session cookie to any request to the site,
whichever page sends it. So a state-changing call (POST, PATCH, DELETE, or
any method that is not a plain read) authenticated by that cookie alone is
accepted only when it carries ``X-Atlassian-Token: no-check`` -- a header a
cross-site form cannot set and a cross-site script cannot send without a
CORS preflight, which the proxy never grants -- and, when the browser names
the page's ``Origin``, only from the proxy's own origin. Jira and Confluence
use the same header for REST calls from their own pages.

Calls with Basic or Bearer credentials never reach this rule: a browser does
not add those by itself.
"""

from __future__ import annotations

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
XSRF_HEADER = "X-Atlassian-Token"
XSRF_VALUE = "no-check"


def csrf_refusal(
    method: str, xsrf_header: str | None, origin: str | None, own_origin: str
) -> str | None:
    """Why a session-authenticated request must be refused, or None to accept it.

    ``own_origin`` is ``scheme://host[:port]`` as clients reach the proxy;
    ``origin`` is the request's ``Origin`` header, if it has one.
    """
    if method.upper() in SAFE_METHODS:
        return None
    if xsrf_header is None or xsrf_header.strip().lower() != XSRF_VALUE:
        return (
            f"a {method} signed in by a session cookie needs the header "
            f"{XSRF_HEADER}: {XSRF_VALUE} (cross-site request protection)"
        )
    if origin is not None and not _same_origin(origin, own_origin):
        return "cross-site requests may not change tokens; use this site's own pages"
    return None


def _same_origin(origin: str, own_origin: str) -> bool:
    # Scheme and host compare case-insensitively; "null" (sandboxed or
    # privacy-sensitive contexts) never matches.
    return origin.strip().rstrip("/").lower() == own_origin.rstrip("/").lower()
