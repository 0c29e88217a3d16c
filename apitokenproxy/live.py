"""Settings a SIGHUP changes while the proxy runs, held where every lane reads them.

A component that reads a live setting keeps a reference to its holder and reads
the value at each use; ``reload.py`` replaces the values in place, so both lanes
see a change at once, and no component keeps a copy that a reload would miss.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import ListenConfig


@dataclass
class ClientTimeouts:
    """How long a client connection may take over its request head, and stay idle
    between requests (``listen.header_timeout_seconds``, ``listen.keepalive_timeout_seconds``)."""

    header: float
    keepalive: float

    @classmethod
    def from_config(cls, listen: ListenConfig) -> ClientTimeouts:
        return cls(listen.header_timeout_seconds, listen.keepalive_timeout_seconds)

    def update(self, listen: ListenConfig) -> None:
        self.header = listen.header_timeout_seconds
        self.keepalive = listen.keepalive_timeout_seconds
