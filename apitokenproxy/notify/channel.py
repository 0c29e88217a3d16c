"""The narrow interface both warning channels implement."""

from __future__ import annotations

from typing import Protocol

from .message import ExpiryWarning


class Channel(Protocol):
    name: str  # recorded with each warning: "email" or "webhook"

    async def send(self, warning: ExpiryWarning) -> None:
        """Deliver one warning or raise NotificationFailed."""
        ...
