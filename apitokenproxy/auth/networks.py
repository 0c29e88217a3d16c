"""Where token and password logins may come from: ``auth.allowed_networks``.

``allowed`` is the pure rule; ``AllowedNetworks`` holds the configured
networks (replaced on reload) and remembers its answers per address, so a
busy client costs one dictionary lookup per request. An empty list allows
every address and costs nothing.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence

from ..errors import Forbidden

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Answers remembered before the memory starts afresh; addresses are cheap to decide again.
_REMEMBERED = 4096


def allowed(address: str, networks: Sequence[Network]) -> bool:
    """Whether ``address`` lies in one of ``networks``; an unparsable address never does.

    An IPv4 address seen on an IPv6 socket (``::ffff:10.0.0.1``) is the IPv4
    address it maps.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


class OutsideAllowedNetworks(Forbidden):
    """A token or password login from outside ``auth.allowed_networks``."""

    reason = "network"


class AllowedNetworks:
    """The networks token and password logins are accepted from."""

    def __init__(self, networks: Sequence[str] = ()) -> None:
        self.update(networks)

    def update(self, networks: Sequence[str]) -> None:
        """Take a new list (a configuration reload); an empty one allows everyone."""
        self._networks = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        self._answers: dict[str, bool] = {}

    @property
    def restricted(self) -> bool:
        return bool(self._networks)

    def allows(self, address: str) -> bool:
        if not self._networks:
            return True
        answer = self._answers.get(address)
        if answer is None:
            answer = allowed(address, self._networks)
            if len(self._answers) >= _REMEMBERED:
                self._answers.clear()
            self._answers[address] = answer
        return answer

    def check(self, address: str) -> None:
        """Raise Forbidden unless ``address`` may log in with a token or password."""
        if not self.allows(address):
            log.info(
                "refused a token or password login from %s: not in auth.allowed_networks", address
            )
            raise OutsideAllowedNetworks(
                f"token and password logins are not accepted from your address ({address})"
            )
