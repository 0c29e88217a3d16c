"""The one network-membership rule (apitokenproxy/networks.py), as tables: what a network
written in the configuration or a token's allowedAddresses is, and what lies inside."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from apitokenproxy.networks import Networks, address, inside, parse_network, parse_networks

NETWORKS = ["10.0.0.0/8", "2001:db8::/32", "fe80::/10"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("10.1.2.3/8", "10.0.0.0/8"),  # host bits are dropped
        ("192.0.2.7", "192.0.2.7/32"),  # an address is a network of one
        (" 2001:DB8::/32 ", "2001:db8::/32"),
        ("::1", "::1/128"),
        # IPv4-mapped IPv6 is the IPv4 network it maps.
        ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
        ("::ffff:a00:0/104", "10.0.0.0/8"),
        ("::ffff:127.0.0.1", "127.0.0.1/32"),
        ("::ffff:0:0/96", "0.0.0.0/0"),
        # Wider than the mapped block: IPv6 only.
        ("::/0", "::/0"),
        ("::ffff:0:0/95", "::fffe:0:0/95"),
        # Other embeddings of IPv4 stay IPv6.
        ("::10.0.0.0/104", "::a00:0/104"),
        ("2002:a00::/24", "2002:a00::/24"),
        ("64:ff9b::10.0.0.0/104", "64:ff9b::a00:0/104"),
        # A zone names an interface of this host: dropped.
        ("fe80::%eth0/10", "fe80::/10"),
        ("::ffff:10.0.0.5%eth0", "10.0.0.5/32"),
    ],
)
def test_a_network_is_read_in_the_form_membership_compares(text: str, expected: str) -> None:
    assert str(parse_network(text)) == expected


@pytest.mark.parametrize(
    "text",
    ["", "unknown", "10.0.0.0/33", "10.0.0.0/8/8", "host.example", "10.0.0.1%eth0",
     "192.0.2.007", "[::1]", "10.0.0.1:80", "::ffff:10.0.0.0/129", None, 10],
)  # fmt: skip
def test_what_is_no_network_is_a_value_error(text: Any) -> None:
    with pytest.raises(ValueError):
        parse_network(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.5", True),
        ("10.255.255.255", True),
        ("11.0.0.1", False),
        ("2001:db8::1", True),
        ("2001:DB8::1", True),
        ("2001:db9::1", False),
        # An IPv4 address written as IPv6 (a dual-stack socket, a proxy's X-Forwarded-For).
        ("::ffff:10.0.0.5", True),
        ("::ffff:a00:5", True),
        ("::ffff:192.0.2.1", False),
        # Other embeddings of 10.0.0.5 in IPv6 are not it.
        ("::10.0.0.5", False),
        ("2002:a00:5::1", False),
        ("64:ff9b::a00:5", False),
        # Zones are ignored.
        ("fe80::1%eth0", True),
        ("fe80::1%2", True),
        ("2001:db8::1%eth0", True),
        ("::ffff:10.0.0.5%eth0", True),
        # What is not an address is never inside.
        ("unknown", False),
        ("", False),
        ("10.0.0.1%eth0", False),
        ("10.0.0.5:443", False),
        ("[2001:db8::1]", False),
        (" 10.0.0.5", False),
        ("010.0.0.5", False),
        ("10.0.0.0/8", False),
        ("host.example", False),
    ],
)
def test_inside(text: str, expected: bool) -> None:
    networks = parse_networks(NETWORKS)
    assert inside(text, networks) is expected
    assert networks.holds(text) is expected
    assert networks.holds(text) is expected  # remembered, the same


@pytest.mark.parametrize(
    ("text", "network", "expected"),
    [
        # A network written as mapped IPv6 holds the IPv4 addresses, either way written.
        ("10.0.0.5", "::ffff:10.0.0.0/104", True),
        ("::ffff:10.0.0.5", "::ffff:10.0.0.0/104", True),
        ("11.0.0.5", "::ffff:10.0.0.0/104", False),
        ("::ffff:10.0.0.5", "10.0.0.0/8", True),
        ("127.0.0.1", "::ffff:127.0.0.1", True),
        ("10.0.0.5", "::ffff:0:0/96", True),
        # ::/0 is every IPv6 address and no IPv4 one, however the IPv4 one is written.
        ("2001:db8::1", "::/0", True),
        ("10.0.0.5", "::/0", False),
        ("::ffff:10.0.0.5", "::/0", False),
        ("10.0.0.5", "0.0.0.0/0", True),
        ("2001:db8::1", "0.0.0.0/0", False),
        # A zone in the network is ignored too.
        ("fe80::1", "fe80::%eth0/10", True),
        ("fe80::1%eth1", "fe80::%eth0/10", True),
    ],
)
def test_mapped_and_zoned_networks(text: str, network: str, expected: bool) -> None:
    assert inside(text, parse_networks([network])) is expected


@pytest.mark.parametrize("text", ["10.0.0.5", "::1", "unknown", ""])
def test_an_empty_list_holds_nothing(text: str) -> None:
    assert not inside(text, ())
    assert not Networks().holds(text)
    assert not parse_networks([])


def test_address_is_the_compared_form() -> None:
    assert address("::ffff:10.0.0.5") == ipaddress.IPv4Address("10.0.0.5")
    assert address("fe80::1%eth0") == ipaddress.IPv6Address("fe80::1")
    assert address("unknown") is None


def test_parse_networks_stops_at_what_is_no_network() -> None:
    with pytest.raises(ValueError, match="nonsense"):
        parse_networks(["10.0.0.0/8", "nonsense"])


def test_networks_are_a_tuple_whose_memory_does_not_count() -> None:
    networks = parse_networks(["10.0.0.0/8", "::ffff:192.0.2.0/120"])
    assert networks == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("192.0.2.0/24"))
    assert networks.holds("192.0.2.7")
    assert networks == parse_networks(["10.0.0.0/8", "192.0.2.0/24"])
    assert hash(networks) == hash(parse_networks(["10.0.0.0/8", "192.0.2.0/24"]))


def test_remembered_answers_are_bounded() -> None:
    networks = parse_networks(["10.0.0.0/8"])
    for i in range(10_000):
        networks.holds(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
    assert 0 < len(networks._answers) <= 4096
    # A long text (a client's X-Forwarded-For hop) is decided, not remembered.
    networks._answers.clear()
    assert not networks.holds("1" * 1000)
    assert networks._answers == {}
