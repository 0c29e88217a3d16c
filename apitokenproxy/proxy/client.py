"""Who the client really is, and what ``X-Forwarded-*`` to send: a pure decision.

A request's ``X-Forwarded-For``, ``-Proto`` and ``-Host`` are believed only
when the peer that sent it is in ``proxy.trusted_proxies`` (a load balancer in
front of the proxy). From anyone else they are replaced, so a client cannot
choose the address that throttling and the upstream's logs see. Whether an
address is a trusted proxy is the one membership rule (``apitokenproxy/networks.py``):
``::ffff:10.0.0.5`` is trusted where ``10.0.0.5`` is.

``came_through_a_proxy`` says whether a request was forwarded by a front
proxy at all, for what must be asked of the proxy itself (the metrics).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDict

from ..networks import Networks
from .headers import list_items


@dataclass(frozen=True)
class ClientView:
    address: str  # the client's address, for throttling and logs
    proto: str  # http or https, as the client used it
    host: str  # Host as the client sent it
    forwarded_for: str  # the X-Forwarded-For value to send upstream


def client_view(
    peer: str | None,
    headers: Mapping[str, str],
    forwarded_for_values: Sequence[str],
    *,
    scheme: str,
    host: str,
    trusted: Networks,
) -> ClientView:
    """Decide the client's address, scheme and host from the peer and its headers.

    ``forwarded_for_values`` is every X-Forwarded-For header of the request.
    """
    peer = peer or "unknown"
    if not trusted or not trusted.holds(peer):
        return ClientView(peer, scheme, host, peer)
    chain = list_items(forwarded_for_values)
    # The rightmost address not one of our own proxies is the first one we can
    # trust to be real; anything left of it may be invented by the client.
    address = next((hop for hop in reversed(chain) if not trusted.holds(hop)), None)
    if address is None:
        address = chain[0] if chain else peer
    proto = next(iter(list_items((headers.get("X-Forwarded-Proto", ""),))), "").lower()
    forwarded_host = next(iter(list_items((headers.get("X-Forwarded-Host", ""),))), "")
    return ClientView(
        address=address,
        proto=proto if proto in ("http", "https") else scheme,
        host=forwarded_host or host,
        forwarded_for=", ".join([*chain, peer]),
    )


class ConnectionViews:
    """The views of one connection's requests, from llhttp's raw headers (the fast lane).

    With no trusted proxies a view depends on the peer and Host alone, the same
    for every request of a connection that keeps its Host: made once, not per request.
    """

    def __init__(self, peer: str, scheme: str) -> None:
        self._peer, self._scheme = peer, scheme
        self._last: ClientView | None = None

    def view(self, host: str, headers: Sequence[tuple[str, str]], trusted: Networks) -> ClientView:
        """``trusted`` is read at each request: a reload changes it live."""
        if not trusted:
            view = self._last
            if view is None or view.host != host:
                view = self._last = client_view(
                    self._peer, {}, (), scheme=self._scheme, host=host, trusted=trusted
                )
            return view
        multi = CIMultiDict(headers)
        return client_view(
            self._peer,
            multi,
            multi.getall("X-Forwarded-For", []),
            scheme=self._scheme,
            host=host,
            trusted=trusted,
        )


_VIEW: web.RequestKey[ClientView] = web.RequestKey("client_view", ClientView)


def client_of(request: web.Request, trusted: Networks) -> ClientView:
    """The request's ClientView, decided once per request."""
    view = request.get(_VIEW)
    if view is None:
        view = client_view(
            request.remote,
            request.headers,
            request.headers.getall("X-Forwarded-For", []),
            scheme=request.scheme,
            # The Host header, as the fast lane reads it; aiohttp's request.host
            # would take the authority of an absolute-form target.
            host=request.headers.get("Host", ""),
            trusted=trusted,
        )
        request[_VIEW] = view
    return view


# What front proxies add to what they forward (RFC 7239, RFC 9110 §7.6.3, the de facto
# X-Forwarded-* and nginx's X-Real-IP); a client of the proxy itself sends none.
FORWARDING_HEADERS = (
    "Forwarded",
    "Via",
    "X-Forwarded-For",
    "X-Forwarded-Host",
    "X-Forwarded-Proto",
    "X-Real-IP",
)


def came_through_a_proxy(headers: Mapping[str, str]) -> bool:
    """Whether a request carries a header that front proxies add.

    Not whether its peer is a trusted proxy: a front proxy on the host shares
    the host's addresses with a client there (Prometheus), so its address
    cannot tell the two apart, and what it forwards always carries
    ``X-Forwarded-For`` if its client's address is to be believed. A front
    proxy that adds none of these looks like a client on its host; what must
    not be served through one has a port of its own too (``metrics.port``).
    """
    return any(name in headers for name in FORWARDING_HEADERS)
