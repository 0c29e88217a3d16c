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
    """How long a client may take, in seconds (``listen.*``): over its request head,
    idle between requests, between two reads of a body, and reading an answer; and the
    body's minimum average rate in bytes a second (0: none)."""

    header: float
    keepalive: float
    body: float = 60.0
    body_min_rate: int = 500
    send: float = 60.0

    @classmethod
    def from_config(cls, listen: ListenConfig) -> ClientTimeouts:
        timeouts = cls(0, 0)
        timeouts.update(listen)
        return timeouts

    def update(self, listen: ListenConfig) -> None:
        self.header = listen.header_timeout_seconds
        self.keepalive = listen.keepalive_timeout_seconds
        self.body = listen.body_timeout_seconds
        self.body_min_rate = listen.body_min_rate
        self.send = listen.send_timeout_seconds
