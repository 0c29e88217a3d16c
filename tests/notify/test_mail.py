"""SMTP as mail servers speak it: STARTTLS with a login, implicit TLS, and a
certificate the configured CA did not sign."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from apitokenproxy.config import SmtpConfig
from apitokenproxy.errors import NotificationFailed
from apitokenproxy.notify.mail import MailChannel
from apitokenproxy.notify.message import ExpiryWarning

from ..e2e.test_tls import Pki, pki  # noqa: F401 - the session's throw-away CA
from .conftest import Inbox

pytestmark = pytest.mark.slow  # openssl makes keys

WARNING = ExpiryWarning(7, "CI deploy", "JIRAUSER10100", "alice", 1_800_000_000_000, 3)


def server_context(keys: Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(keys.cert, keys.key)
    return context


def only(login: bytes, password: bytes) -> Callable[..., AuthResult]:
    def check(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (login, password)
        return AuthResult(success=ok)

    return check


Serve = Callable[..., Any]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []

    async def start(box: Inbox, *, tls: ssl.SSLContext | None = None, **smtp: Any) -> int:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(box, **smtp), "127.0.0.1", 0, ssl=tls)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def email_of(name: str) -> str:
    return f"{name}@example.com"


async def test_starttls_with_a_login(serve: Serve, pki: Pki) -> None:  # noqa: F811
    box = Inbox()
    port = await serve(
        box,
        tls_context=server_context(pki),
        require_starttls=True,
        auth_required=True,
        authenticator=only(b"mailer", b"s3cret"),
    )
    config = SmtpConfig(
        host="127.0.0.1", port=port, security="starttls", user="mailer", password="s3cret",
        ca_file=str(pki.ca),
    )  # fmt: skip
    await MailChannel(config, email_of).send(WARNING)
    assert [to for to, _ in box.messages] == [["alice@example.com"]]
    # aiosmtpd stalls after a refused login; the short timeout ends the attempt.
    wrong = dataclasses.replace(config, password="wrong", timeout_seconds=2)
    with pytest.raises(NotificationFailed, match=r"SMTP 127\.0\.0\.1:\d+ failed") as failed:
        await MailChannel(wrong, email_of).send(WARNING)
    assert "s3cret" not in failed.value.reason and "wrong" not in failed.value.reason


async def test_implicit_tls(serve: Serve, pki: Pki) -> None:  # noqa: F811
    box = Inbox()
    port = await serve(box, tls=server_context(pki))
    config = SmtpConfig(host="127.0.0.1", port=port, security="tls", ca_file=str(pki.ca))
    await MailChannel(config, email_of).send(WARNING)
    assert len(box.messages) == 1


async def test_a_certificate_from_an_unknown_ca_is_refused(serve: Serve, pki: Pki) -> None:  # noqa: F811
    box = Inbox()
    port = await serve(box, tls=server_context(pki))
    config = SmtpConfig(host="127.0.0.1", port=port, security="tls")  # the system's CAs
    with pytest.raises(NotificationFailed, match="CERTIFICATE_VERIFY_FAILED"):
        await MailChannel(config, email_of).send(WARNING)
    assert box.messages == []
