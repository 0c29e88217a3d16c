"""auth.allowed_networks: which client addresses may log in with a token or password."""

from __future__ import annotations

import ipaddress

import pytest

from apitokenproxy.auth.networks import AllowedNetworks, allowed
from apitokenproxy.errors import Forbidden

NETWORKS = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32"))


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("10.0.0.1", True),
        ("10.255.255.255", True),
        ("11.0.0.1", False),
        ("2001:db8::1", True),
        ("2001:db9::1", False),
        # An IPv4 client on a dual-stack socket.
        ("::ffff:10.1.2.3", True),
        ("::ffff:192.0.2.1", False),
        # Not an address at all (an unknown peer): never allowed.
        ("unknown", False),
        ("", False),
        ("10.0.0.1%eth0", False),
    ],
)
def test_allowed(address: str, expected: bool) -> None:
    assert allowed(address, NETWORKS) is expected


def test_an_empty_list_allows_everyone_and_update_replaces_the_list() -> None:
    networks = AllowedNetworks()
    assert not networks.restricted
    assert networks.allows("unknown")
    networks.update(["192.0.2.0/24"])
    assert networks.restricted
    assert networks.allows("192.0.2.7")
    assert not networks.allows("10.0.0.1")
    with pytest.raises(Forbidden, match=r"\(10.0.0.1\)"):
        networks.check("10.0.0.1")
    # Remembered answers do not outlive a reload.
    networks.update(["10.0.0.0/8"])
    assert networks.allows("10.0.0.1")
    assert not networks.allows("192.0.2.7")


def test_remembered_answers_are_bounded() -> None:
    networks = AllowedNetworks(["10.0.0.0/8"])
    for i in range(10_000):
        networks.allows(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
    assert len(networks._answers) <= 4096
