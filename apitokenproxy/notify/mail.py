"""E-mail through SMTP (``notify.smtp``), to the address the upstream shows for the owner.

``smtplib`` runs in a worker thread: warnings are rare, and the standard
library speaks STARTTLS, implicit TLS and AUTH without a new dependency.
SMTP and socket errors become NotificationFailed here.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Awaitable, Callable
from email.message import EmailMessage

from ..config import SmtpConfig
from ..errors import NotificationFailed, ProxyError
from .message import ExpiryWarning, email

# The owner's e-mail address by user name, as the upstream shows it.
EmailOf = Callable[[str], Awaitable[str | None]]


class MailChannel:
    name = "email"

    def __init__(self, config: SmtpConfig, email_of: EmailOf) -> None:
        self._config = config
        self._email_of = email_of

    async def send(self, warning: ExpiryWarning) -> None:
        try:
            recipient = await self._email_of(warning.owner_name)
        except ProxyError as exc:
            raise NotificationFailed(
                f"cannot ask the upstream for {warning.owner_name}'s e-mail: {exc.message}"
            ) from exc
        if recipient is None:
            raise NotificationFailed(
                f"the upstream shows no e-mail address for {warning.owner_name}"
            )
        message = email(warning, self._config.sender, recipient)
        try:
            await asyncio.to_thread(deliver, self._config, message)
        except (smtplib.SMTPException, OSError) as exc:
            raise NotificationFailed(
                f"SMTP {self._config.host}:{self._config.port} failed: {exc}"
            ) from exc


def deliver(config: SmtpConfig, message: EmailMessage) -> None:
    """Send one message, blocking; raises smtplib.SMTPException or OSError."""
    context = ssl.create_default_context(cafile=config.ca_file or None)
    smtp: smtplib.SMTP
    if config.security == "tls":
        smtp = smtplib.SMTP_SSL(
            config.host, config.port, timeout=config.timeout_seconds, context=context
        )
    else:
        smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout_seconds)
    with smtp:
        if config.security == "starttls":
            smtp.starttls(context=context)
        if config.user:
            smtp.login(config.user, config.password)
        smtp.send_message(message)
