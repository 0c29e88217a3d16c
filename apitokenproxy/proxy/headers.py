"""Which headers cross the proxy, in both directions: pure functions on header lists.

Headers are handled as ``(name, value)`` lists straight from the wire, so
duplicates (several ``Set-Cookie``) and order survive.

Names are compared normalised: lower case with ``_`` read as ``-``. Many
servers (and Tomcat valves, and CGI-style environments) treat
``X_Forwarded_User`` like ``X-Forwarded-User``, so a spoofed identity header
must be caught in every spelling.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from ..auth.grant import EXPIRY_HEADER
from ..config import UpstreamConfig
from ..errors import UnsendableUserName
from ..ops.requestid import HEADER as REQUEST_ID
from ..ops.requestid import NORMALISED as REQUEST_ID_NAME

if TYPE_CHECKING:
    from .client import ClientView

Headers = list[tuple[str, str]]

# RFC 9110 §7.6.1, plus the non-standard ones proxies have always dropped.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
    }
)

# Always recomputed by the proxy; a client's values count only from a trusted peer.
FORWARDING = frozenset({"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"})


def list_items(values: Iterable[str]) -> list[str]:
    """The items of comma-separated field values (RFC 9110 §5.6.1), stripped, empty
    ones dropped: the one place the proxy splits a header list."""
    return [item for value in values for item in (i.strip(" \t") for i in value.split(",")) if item]


_NORMALISED: dict[str, str] = {}
_NORMALISED_MAX = 4096


def normalise(name: str) -> str:
    """The name as compared: lower case, ``_`` read as ``-``, no surrounding spaces."""
    # Remembered: the same few dozen names arrive on every request.
    found = _NORMALISED.get(name)
    if found is None:
        found = name.strip().lower().replace("_", "-")
        if len(_NORMALISED) >= _NORMALISED_MAX:
            _NORMALISED.clear()  # a flood of invented names costs memory once, not forever
        _NORMALISED[name] = found
    return found


# ``Connection`` may make any other header hop-by-hop, but never these: the
# message's framing and its Host mean the same on both sides of the proxy.
NEVER_NAMED = frozenset({"content-length", "transfer-encoding", "host"})
# Connection values that name no other header: most messages carry one of
# these alone, and need no list splitting.
_CONNECTION_OPTIONS = frozenset({"close", "keep-alive"})


def connection_named(headers: Iterable[tuple[str, str]]) -> frozenset[str]:
    """Header names listed in ``Connection``: hop-by-hop for this message only."""
    named: set[str] = set()
    for name, value in headers:
        if normalise(name) == "connection":
            named.update(normalise(token) for token in list_items((value,)))
    return frozenset(named - NEVER_NAMED)


def end_to_end(headers: Sequence[tuple[str, str]], drop: frozenset[str] = frozenset()) -> Headers:
    """Headers without hop-by-hop ones, those named in Connection, and ``drop`` (normalised)."""
    # One pass on every request and every answer of the data path, so written
    # for speed: names are looked up in normalise's memory without a call, one
    # set holds everything dropped, and the second filter runs only when
    # Connection names something not already gone.
    gone = _GONE.get(drop)
    if gone is None:
        gone = _GONE[drop] = HOP_BY_HOP | drop
    kept: Headers = []
    listing: list[tuple[str, str]] = []  # Connection headers that may name others
    for header in headers:
        key = _NORMALISED.get(header[0])
        if key is None:
            key = normalise(header[0])
        if key in gone:
            if key == "connection" and header[1].lower() not in _CONNECTION_OPTIONS:
                listing.append(header)
            continue
        kept.append(header)
    if listing:
        named = connection_named(listing) - gone
        if named:
            return [header for header in kept if normalise(header[0]) not in named]
    return kept


# Each drop set with the hop-by-hop names, made once: callers pass a few fixed sets.
_GONE: dict[frozenset[str], frozenset[str]] = {}


def upstream_drops(identity_headers: Iterable[str], strip_authorization: bool) -> frozenset[str]:
    """The names ``Injection.rewrite`` removes besides the hop-by-hop ones (normalised).

    Every client-sent copy of an identity header (the user header, the shared
    secret header) goes, in any spelling, whatever the request turns out to
    be; so do the client's forwarding headers, which the proxy recomputes
    (``proxy/client.py``), and its ``X-Request-Id`` (the proxy sends the id it
    logs, ``ops/requestid.py``). ``Expect`` is answered by the proxy itself,
    after authentication, so it is not passed on; nor is ``Content-Length``:
    the proxy frames the request itself (``proxy/framing.py``). ``Host`` stays
    the client's, as Jira's proxy settings expect.
    """
    drop = {normalise(h) for h in identity_headers} | FORWARDING
    drop |= {"expect", "content-length", REQUEST_ID_NAME}
    if strip_authorization:
        drop.add("authorization")
    return frozenset(drop)


# The proxy's own response headers: never the upstream's to set.
PROXY_RESPONSE = frozenset({normalise(EXPIRY_HEADER)})
# Never on an answer to a token: the upstream's session (Seraph puts the user
# it was told of in the session) would let the token's holder go on as the
# owner without the token, past its scope, allowed addresses and revocation.
SESSION_COOKIES = frozenset({"set-cookie", "set-cookie2"})
TOKEN_RESPONSE = PROXY_RESPONSE | SESSION_COOKIES
_WITH_REQUEST_ID = PROXY_RESPONSE | {REQUEST_ID_NAME}
_TOKEN_WITH_REQUEST_ID = TOKEN_RESPONSE | {REQUEST_ID_NAME}


def for_client(
    headers: Sequence[tuple[str, str]], request_id: str | None = None, *, token: bool = False
) -> Headers:
    """The upstream's response headers to send on to the client, without any copy of
    the proxy's own (the token's expiry, which the lanes add after this), without
    its cookies when the request was authenticated with a ``token``, and with the
    request's id (the proxy's, replacing any the upstream sent) when one is given."""
    if request_id is None:
        return end_to_end(headers, TOKEN_RESPONSE if token else PROXY_RESPONSE)
    kept = end_to_end(headers, _TOKEN_WITH_REQUEST_ID if token else _WITH_REQUEST_ID)
    kept.append((REQUEST_ID, request_id))
    return kept


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Percent-encoding keeps every visible ASCII character but "%" itself, so the
# names most sites have (ASCII) look the same in every encoding.
_PERCENT_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")


def user_value(name: str, encoding: str) -> str:
    """The user header's value for ``name``, as a str whose Latin-1 bytes go on the wire.

    Raises UnsendableUserName when the name cannot be written in ``encoding``
    (never drops the connection, never sends a name the upstream would misread).
    """
    if _CONTROL.search(name) is not None:
        raise UnsendableUserName("the token owner's name contains control characters")
    if encoding == "percent":
        return quote(name, safe=_PERCENT_SAFE)
    if encoding == "utf-8":
        return name.encode("utf-8").decode("latin-1")
    try:
        name.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise UnsendableUserName(
            f"the token owner's name {name!r} cannot be sent in ISO-8859-1; the administrator "
            "can set upstream.user_header_encoding to utf-8 or percent"
        ) from exc
    return name


@dataclass(frozen=True)
class Injection:
    """What the proxy tells the upstream about a request, the same on every path."""

    user_header: str
    identity_headers: tuple[str, ...]  # never accepted from a client
    secret: tuple[tuple[str, str], ...]  # the shared-secret header, if configured
    encoding: str = "latin-1"  # see user_value

    @classmethod
    def from_config(cls, upstream: UpstreamConfig) -> Injection:
        return cls(
            user_header=upstream.user_header,
            identity_headers=tuple(
                h for h in (upstream.user_header, upstream.shared_secret_header) if h
            ),
            secret=(
                ((upstream.shared_secret_header, upstream.shared_secret),)
                if upstream.shared_secret
                else ()
            ),
            encoding=upstream.user_header_encoding,
        )

    def rewrite(
        self,
        headers: Sequence[tuple[str, str]],
        client: ClientView,
        *,
        user_name: str | None,
        strip_authorization: bool,
        request_id: str,
    ) -> Headers:
        """The request headers for the upstream: stripped, then the proxy's own added."""
        # The two possible drop sets are made once.
        kept = end_to_end(headers, self._drops[strip_authorization])
        kept += (
            ("X-Forwarded-For", client.forwarded_for),
            ("X-Forwarded-Proto", client.proto),
            ("X-Forwarded-Host", client.host),
            (REQUEST_ID, request_id),
        )
        kept += self.secret if user_name is None else self._identity(user_name)
        return kept

    def identity(self, user_name: str) -> Headers:
        """The headers that say who a request is from: the user header and the
        shared secret; the proxy's own REST calls on a user's behalf send these too."""
        return list(self._identity(user_name))

    def _identity(self, user_name: str) -> tuple[tuple[str, str], ...]:
        found = self._identities.get(user_name)
        if found is None:
            # Checked and encoded once per name: the same owners recur on every request.
            found = ((self.user_header, user_value(user_name, self.encoding)), *self.secret)
            if len(self._identities) >= _NORMALISED_MAX:
                self._identities.clear()
            self._identities[user_name] = found
        return found

    @functools.cached_property
    def _identities(self) -> dict[str, tuple[tuple[str, str], ...]]:
        return {}

    @functools.cached_property
    def _drops(self) -> dict[bool, frozenset[str]]:
        return {strip: upstream_drops(self.identity_headers, strip) for strip in (False, True)}
