"""Whether an address lies in a list of networks: the one rule every address check uses.

Trusted proxies (``proxy.trusted_proxies``), where logins may come from
(``auth.allowed_networks``), a token's allowed addresses and who may read the
metrics (``metrics.allow``) are all lists of networks parsed here, by
``parse_network``, and asked here, by ``inside``. One rule for all four, so an
address cannot be one thing to the trusted-proxy check and another to the
allowed networks:

- IPv4 is one space and IPv6 another. An IPv4-mapped IPv6 address
  (``::ffff:10.0.0.5``, how a dual-stack socket or a front proxy's log shows an
  IPv4 peer) is the IPv4 address it maps, and so is a network written inside
  ``::ffff:0:0/96``: ``::ffff:10.0.0.0/104`` is ``10.0.0.0/8``. A wider IPv6
  network (``::/0``) holds no IPv4 address; ``0.0.0.0/0`` is written for those.
  Other ways of embedding IPv4 in IPv6 (6to4, NAT64, IPv4-compatible) are IPv6.
- A zone (``fe80::1%eth0``) names an interface of this host, not a different
  address: it is ignored, in an address and in a network.
- What is not an address ("unknown", a Unix socket peer, a host name, an
  address with a port) lies in no network; neither does any address in an
  empty list. Whether an empty list means "nobody" or "everybody" is the
  caller's policy (``auth/networks.py`` reads it as everybody).
- Host bits are dropped: ``10.1.2.3/8`` is ``10.0.0.0/8``, a bare address a
  network of one.

``Networks`` is a parsed list that remembers its answers per address (a bounded
memory), so on the data path a known client costs one dictionary lookup
instead of parsing its address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv4-mapped IPv6: ::ffff:a.b.c.d.
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
# Answers remembered before the memory starts afresh; addresses are cheap to decide again.
_REMEMBERED = 4096
# Longer texts are decided but not remembered: the longest address is 45 characters
# (plus a zone), and a client's X-Forwarded-For hop must not fill the memory.
_LONGEST = 64


def parse_network(text: str) -> Network:
    """The network ``text`` names (CIDR, or a bare address for a network of one), in the
    form membership compares: mapped IPv6 as IPv4, without a zone, host bits dropped.

    Raises ValueError for anything else. Surrounding white space is allowed.
    """
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not an IP network")
    network = ipaddress.ip_network(text.strip(), strict=False)
    if isinstance(network, ipaddress.IPv4Network):
        return network
    if network.network_address.scope_id is not None:  # the zone is dropped, the bits kept
        network = ipaddress.IPv6Network((int(network.network_address), network.prefixlen))
    if network.subnet_of(_MAPPED):
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None  # inside ::ffff:0:0/96
        return ipaddress.IPv4Network((mapped, network.prefixlen - _MAPPED.prefixlen))
    return network


def parse_networks(items: Iterable[str]) -> Networks:
    """``parse_network`` of each; raises ValueError at the first that is no network."""
    return Networks(parse_network(item) for item in items)


def address(text: str) -> Address | None:
    """The address ``text`` is, as membership compares it (mapped IPv6 as IPv4, no zone);
    None if it is no address."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped
        if mapped is not None:
            return mapped
        if ip.scope_id is not None:
            return ipaddress.IPv6Address(int(ip))
    return ip


def inside(text: str, networks: Iterable[Network]) -> bool:
    """Whether the address ``text`` lies in one of ``networks`` (parsed by ``parse_network``);
    what is not an address never does."""
    ip = address(text)
    if ip is None:
        return False
    # Comparing an IPv4 address with an IPv6 network is False, never an error.
    return any(ip in network for network in networks)


class Networks(tuple[Network, ...]):
    """A parsed list of networks (a tuple of them), which remembers ``holds`` answers per
    address. Equal, hashed and true or false as the tuple is, so the checks that come
    before ``holds`` (``if trusted:``) cost what a tuple's do.

    Immutable as far as callers see: a configuration reload makes a new one.
    """

    _answers: dict[str, bool]

    def __new__(cls, networks: Iterable[Network] = ()) -> Networks:
        self = super().__new__(cls, networks)
        self._answers = {}
        return self

    def holds(self, text: str) -> bool:
        """``inside(text, self)``, remembered."""
        answer = self._answers.get(text)
        if answer is None:
            answer = inside(text, self)
            if len(text) > _LONGEST:
                return answer
            if len(self._answers) >= _REMEMBERED:
                self._answers.clear()
            self._answers[text] = answer
        return answer

    def __repr__(self) -> str:
        return f"Networks({', '.join(map(str, self))})"
