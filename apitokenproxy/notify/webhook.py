"""The webhook channel (``notify.webhook``): a signed JSON POST per warning.

Headers: ``X-Apitokenproxy-Timestamp`` (seconds since the epoch) and
``X-Apitokenproxy-Signature: sha256=HEX``, the HMAC-SHA256 with the
configured secret over ``TIMESTAMP.BODY``. A receiver recomputes it,
compares in constant time, and refuses old timestamps so a captured call
cannot be replayed. Any answer but 2xx is a failure, retried.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

import aiohttp

from ..config import WebhookConfig
from ..errors import NotificationFailed
from .message import ExpiryWarning, webhook_body

TIMESTAMP_HEADER = "X-Apitokenproxy-Timestamp"
SIGNATURE_HEADER = "X-Apitokenproxy-Signature"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookChannel:
    name = "webhook"

    def __init__(self, config: WebhookConfig, clock: Callable[[], int]) -> None:
        self._config = config
        self._clock = clock

    async def send(self, warning: ExpiryWarning) -> None:
        body = webhook_body(warning)
        timestamp = str(self._clock() // 1000)
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: signature(self._config.secret, timestamp, body),
        }
        timeout = aiohttp.ClientTimeout(total=self._config.timeout_seconds)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                # Only to the URL the operator configured: a redirect would carry the
                # signed warning wherever the receiver (or whoever answers) points.
                session.post(
                    self._config.url, data=body, headers=headers, allow_redirects=False
                ) as response,
            ):
                if not 200 <= response.status < 300:
                    raise NotificationFailed(f"the webhook answered HTTP {response.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise NotificationFailed(f"the webhook cannot be reached: {exc!r}") from exc
