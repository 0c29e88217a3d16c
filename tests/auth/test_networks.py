"""auth.allowed_networks: which client addresses may log in with a token or password.

The membership rule itself is tests/test_networks.py's; here, the policy around it."""

from __future__ import annotations

import pytest

from apitokenproxy.auth.networks import AllowedNetworks
from apitokenproxy.errors import Forbidden
from apitokenproxy.live import Live, Settings
from apitokenproxy.networks import parse_networks


def allowed(networks: tuple[str, ...]) -> Live:
    """The live settings with these ``auth.allowed_networks``."""
    return Live(Settings(allowed_networks=parse_networks(networks)))


def test_an_empty_list_allows_everyone_and_a_reload_replaces_the_list() -> None:
    live = Live()
    networks = AllowedNetworks(live)
    assert not networks.restricted
    assert networks.allows("unknown")
    live.swap(allowed(("192.0.2.0/24",)).now)
    assert networks.restricted
    assert networks.allows("192.0.2.7")
    assert networks.allows("::ffff:192.0.2.7")
    assert not networks.allows("10.0.0.1")
    assert not networks.allows("unknown")
    with pytest.raises(Forbidden, match=r"\(10.0.0.1\)"):
        networks.check("10.0.0.1")
    # Remembered answers do not outlive a reload.
    live.swap(allowed(("10.0.0.0/8",)).now)
    assert networks.allows("10.0.0.1")
    assert not networks.allows("192.0.2.7")


def test_a_mapped_network_allows_its_ipv4_clients() -> None:
    networks = AllowedNetworks(allowed(("::ffff:10.0.0.0/104",)))
    assert networks.allows("10.1.2.3") and networks.allows("::ffff:10.1.2.3")
    assert not networks.allows("11.1.2.3")
