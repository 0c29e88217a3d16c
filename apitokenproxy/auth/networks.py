"""Where token and password logins may come from: ``auth.allowed_networks``.

``AllowedNetworks`` reads the configured networks from ``live.Live`` at
each check (a reload replaces them) and asks them with the one membership
rule (``apitokenproxy/networks.py``), which remembers its answers per
address, so a busy client costs one dictionary lookup per request. An
empty list allows every address and costs nothing.
"""

from __future__ import annotations

import logging

from ..errors import OutsideAllowedNetworks
from ..live import Live

log = logging.getLogger(__name__)


class AllowedNetworks:
    """The networks token and password logins are accepted from."""

    def __init__(self, live: Live | None = None) -> None:
        """``live``'s ``allowed_networks``; an empty list allows everyone."""
        self._live = live or Live()

    @property
    def restricted(self) -> bool:
        return bool(self._live.now.allowed_networks)

    def allows(self, address: str) -> bool:
        networks = self._live.now.allowed_networks
        return not networks or networks.holds(address)

    def check(self, address: str) -> None:
        """Raise Forbidden unless ``address`` may log in with a token or password."""
        if not self.allows(address):
            log.info(
                "refused a token or password login from %s: not in auth.allowed_networks", address
            )
            raise OutsideAllowedNetworks(
                f"token and password logins are not accepted from your address ({address})"
            )
