"""Where token and password logins may come from: ``auth.allowed_networks``.

``AllowedNetworks`` holds the configured networks (replaced on reload) and
asks them with the one membership rule (``apitokenproxy/networks.py``), which
remembers its answers per address, so a busy client costs one dictionary
lookup per request. An empty list allows every address and costs nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ..errors import OutsideAllowedNetworks
from ..networks import parse_networks

log = logging.getLogger(__name__)


class AllowedNetworks:
    """The networks token and password logins are accepted from."""

    def __init__(self, networks: Sequence[str] = ()) -> None:
        self.update(networks)

    def update(self, networks: Sequence[str]) -> None:
        """Take a new list (a configuration reload); an empty one allows everyone."""
        self._networks = parse_networks(networks)

    @property
    def restricted(self) -> bool:
        return bool(self._networks)

    def allows(self, address: str) -> bool:
        return not self._networks or self._networks.holds(address)

    def check(self, address: str) -> None:
        """Raise Forbidden unless ``address`` may log in with a token or password."""
        if not self.allows(address):
            log.info(
                "refused a token or password login from %s: not in auth.allowed_networks", address
            )
            raise OutsideAllowedNetworks(
                f"token and password logins are not accepted from your address ({address})"
            )
