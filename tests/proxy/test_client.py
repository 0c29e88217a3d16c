"""Deciding the client's address and the X-Forwarded-* values, as a table."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from apitokenproxy.networks import Networks, parse_networks
from apitokenproxy.proxy.client import ClientView, came_through_a_proxy, client_view

LB = parse_networks(["10.0.0.0/8", "fd00::/8"])


@pytest.mark.parametrize(
    ("peer", "xff", "extra", "trusted", "expected"),
    [
        # Untrusted peer: everything it says is ignored.
        ("198.51.100.4", ["6.6.6.6"], {"X-Forwarded-Proto": "https"}, LB,
         ClientView("198.51.100.4", "http", "proxy:8080", "198.51.100.4")),
        # No trusted networks configured at all.
        ("10.1.1.1", ["6.6.6.6"], {}, Networks(),
         ClientView("10.1.1.1", "http", "proxy:8080", "10.1.1.1")),
        # Trusted load balancer: the client is the rightmost untrusted hop.
        ("10.1.1.1", ["6.6.6.6, 203.0.113.7"], {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "jira.example.com"}, LB,
         ClientView("203.0.113.7", "https", "jira.example.com", "6.6.6.6, 203.0.113.7, 10.1.1.1")),
        # Several LB hops, split over two headers.
        ("10.1.1.1", ["203.0.113.7", "10.2.2.2"], {}, LB,
         ClientView("203.0.113.7", "http", "proxy:8080", "203.0.113.7, 10.2.2.2, 10.1.1.1")),
        # Trusted peer without X-Forwarded-For: the peer is the client.
        ("10.1.1.1", [], {}, LB, ClientView("10.1.1.1", "http", "proxy:8080", "10.1.1.1")),
        # Only trusted hops: take the leftmost.
        ("10.1.1.1", ["10.3.3.3"], {}, LB, ClientView("10.3.3.3", "http", "proxy:8080", "10.3.3.3, 10.1.1.1")),
        # A nonsense proto is not believed.
        ("10.1.1.1", [], {"X-Forwarded-Proto": "gopher"}, LB, ClientView("10.1.1.1", "http", "proxy:8080", "10.1.1.1")),
        # IPv6 peers.
        ("fd00::1", ["2001:db8::5"], {}, LB, ClientView("2001:db8::5", "http", "proxy:8080", "2001:db8::5, fd00::1")),
        (None, [], {}, LB, ClientView("unknown", "http", "proxy:8080", "unknown")),
        # A trusted peer or hop written as IPv4-mapped IPv6 is trusted like its IPv4 address.
        ("::ffff:10.1.1.1", ["203.0.113.7"], {}, LB,
         ClientView("203.0.113.7", "http", "proxy:8080", "203.0.113.7, ::ffff:10.1.1.1")),
        ("10.1.1.1", ["203.0.113.7, ::ffff:10.2.2.2"], {}, LB,
         ClientView("203.0.113.7", "http", "proxy:8080", "203.0.113.7, ::ffff:10.2.2.2, 10.1.1.1")),
        ("::ffff:198.51.100.4", ["6.6.6.6"], {}, LB,
         ClientView("::ffff:198.51.100.4", "http", "proxy:8080", "::ffff:198.51.100.4")),
        # A zone does not make a trusted peer another address.
        ("fd00::1%eth0", ["2001:db8::5"], {}, LB,
         ClientView("2001:db8::5", "http", "proxy:8080", "2001:db8::5, fd00::1%eth0")),
    ],
)  # fmt: skip
def test_client_view(
    peer: str | None,
    xff: list[str],
    extra: dict[str, str],
    trusted: Networks,
    expected: ClientView,
) -> None:
    headers = {"X-Forwarded-For": ", ".join(xff), **extra}
    assert (
        client_view(peer, headers, xff, scheme="http", host="proxy:8080", trusted=trusted)
        == expected
    )


@pytest.mark.parametrize(
    ("headers", "through"),
    [
        # Prometheus, or curl, on the host: nothing a front proxy adds.
        ({"User-Agent": "Prometheus/2.53", "Accept": "text/plain", "Host": "127.0.0.1"}, False),
        ({}, False),
        # Any header a front proxy adds tells, whatever its case or value.
        ({"X-Forwarded-For": "203.0.113.7"}, True),
        ({"x-forwarded-for": ""}, True),
        ({"X-Real-IP": "203.0.113.7"}, True),
        ({"Forwarded": "for=203.0.113.7"}, True),
        ({"Via": "1.1 front"}, True),
        ({"X-Forwarded-Proto": "https"}, True),
        ({"X-Forwarded-Host": "jira.example.com"}, True),
    ],
)  # fmt: skip
def test_came_through_a_proxy(headers: dict[str, str], through: bool) -> None:
    assert came_through_a_proxy(CIMultiDict(headers)) is through
