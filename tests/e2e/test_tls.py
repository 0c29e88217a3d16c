"""TLS both ways, with a throw-away CA made by openssl for each test session.

The proxy listens in HTTPS (``listen.tls``) on both lanes, and talks to an
``https://`` upstream whose certificate it checks against ``upstream.ca_file``
(or does not, with ``upstream.verify_tls: false``).
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp.test_utils import TestServer

from apitokenproxy.app import COMPONENTS, create_app
from apitokenproxy.cli import main
from apitokenproxy.config import config_from_dict, load_config
from apitokenproxy.errors import StartupError
from apitokenproxy.reload import Reloader
from apitokenproxy.server import start_site

from ..conftest import LANES, base_config, deep_merge
from ..fakes import JIRA_USERS, FakeUpstream
from ..processes import free_port

pytestmark = pytest.mark.slow  # openssl makes keys


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)  # noqa: S603, S607


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, and a certificate it signed for 127.0.0.1 and localhost."""
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=apitokenproxy test CA", cwd=d)  # fmt: skip
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext", cwd=d)  # fmt: skip
    return Pki(d / "ca.pem", d / "server.pem", d / "server.key")


def client_context(pki: Pki) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki.ca))


@pytest.fixture
async def proxy_with(lane: str, tmp_path: Path) -> AsyncIterator[Any]:
    runners = []

    async def make(upstream_url: str, extra: dict[str, Any]) -> int:
        raw = deep_merge(
            deep_merge(base_config(upstream_url, f"sqlite:///{tmp_path / 't.db'}"), LANES[lane]),
            extra,
        )
        runner = await start_site(
            create_app(config_from_dict(raw)), "127.0.0.1", 0, access_log=False
        )
        runners.append(runner)
        return int(runner.addresses[0][1])

    yield make
    for runner in runners:
        await runner.cleanup()


async def test_the_proxy_listens_in_https(aiohttp_server: Any, pki: Pki, proxy_with: Any) -> None:
    upstream = FakeUpstream("jira", JIRA_USERS)
    server = await aiohttp_server(upstream.app())
    tls = {"listen": {"tls": {"cert_file": str(pki.cert), "key_file": str(pki.key)}}}
    port = await proxy_with(str(server.make_url("")).rstrip("/"), tls)
    async with aiohttp.ClientSession() as http:
        # The fast lane (anonymous: the fake Jira answers), then a hand-off (the token API
        # wants credentials).
        for path, status in (
            ("/rest/api/2/issue/X-1", 200),
            ("/rest/de.resolution.apitokenauth/latest/user/token", 401),
        ):
            async with http.get(f"https://127.0.0.1:{port}{path}", ssl=client_context(pki)) as resp:
                assert resp.status == status, path
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await http.get(f"https://127.0.0.1:{port}/x")  # not a CA the system trusts
    seen = {k.lower(): v for k, v in upstream.received[0].headers}
    assert seen["x-forwarded-proto"] == "https"


@pytest.fixture
async def https_upstream(pki: Pki) -> AsyncIterator[tuple[str, FakeUpstream]]:
    upstream = FakeUpstream("jira", JIRA_USERS)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.cert, pki.key)
    server = TestServer(upstream.app(), host="127.0.0.1")
    await server.start_server(ssl=context)
    try:
        yield f"https://127.0.0.1:{server.port}", upstream
    finally:
        await server.close()


@pytest.mark.parametrize(
    ("trust", "status"),
    [
        ("ca_file", 200),  # the private CA is trusted
        ("system", 502),  # the system's CAs do not know it: refused, not sent
        ("no verification", 200),  # verify_tls: false
    ],
)
async def test_an_https_upstream_is_checked_against_the_configured_ca(
    https_upstream: tuple[str, FakeUpstream], pki: Pki, proxy_with: Any, trust: str, status: int
) -> None:
    url, upstream = https_upstream
    extra = {
        "ca_file": {"upstream": {"ca_file": str(pki.ca)}},
        "system": {},
        "no verification": {"upstream": {"verify_tls": False}},
    }[trust]
    port = await proxy_with(url, extra)
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/rest/api/2/issue/X-1") as resp,
    ):
        assert resp.status == status, await resp.text()
    assert len(upstream.received) == (1 if status == 200 else 0)


async def test_a_certificate_that_cannot_be_loaded_stops_the_start(
    pki: Pki, proxy_with: Any, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.pem"
    broken.write_text("not a certificate")
    with pytest.raises(StartupError, match=r"cannot load listen\.tls certificate"):
        await proxy_with("http://127.0.0.1:9", {"listen": {"tls": {"cert_file": str(broken),
                                                                   "key_file": str(pki.key)}}})  # fmt: skip


async def test_sighup_picks_up_a_renewed_certificate(
    aiohttp_server: Any, pki: Pki, tmp_path: Path
) -> None:
    d = pki.ca.parent
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "renewed.key", "-out", "renewed.csr", "-subj", "/CN=renewed", cwd=d)  # fmt: skip
    _openssl("x509", "-req", "-in", "renewed.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "renewed.pem", "-days", "2", "-extfile", "san.ext", cwd=d)  # fmt: skip
    upstream = await aiohttp_server(FakeUpstream("jira", JIRA_USERS).app())
    config_file = tmp_path / "config.yaml"

    def write(cert: str, key: str) -> None:
        config_file.write_text(
            yaml.safe_dump(
                {
                    "upstream": {"url": str(upstream.make_url("")).rstrip("/")},
                    "store": {"url": f"sqlite:///{tmp_path / 't.db'}"},
                    "listen": {"tls": {"cert_file": cert, "key_file": key}},
                }
            )
        )

    write(str(pki.cert), str(pki.key))
    runner = await start_site(
        create_app(load_config(config_file)), "127.0.0.1", 0, access_log=False
    )
    port = int(runner.addresses[0][1])
    try:
        assert await served_name(port, pki) == "localhost"
        write(str(d / "renewed.pem"), str(d / "renewed.key"))
        components = runner.app[COMPONENTS]
        assert Reloader(config_file, components.config, components.live, runner.tls).reload()
        assert await served_name(port, pki) == "renewed"  # new connections, new certificate
    finally:
        await runner.cleanup()


async def served_name(port: int, pki: Pki) -> str:
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(pki))
    cert = writer.get_extra_info("peercert")
    writer.close()
    return str(dict(item[0] for item in cert["subject"])["commonName"])


async def test_health_follows_the_configured_scheme_and_port(
    aiohttp_server: Any, pki: Pki, tmp_path: Path
) -> None:
    upstream = await aiohttp_server(FakeUpstream("jira", JIRA_USERS).app())
    port = free_port()
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "upstream": {"url": str(upstream.make_url("")).rstrip("/")},
                "store": {"url": f"sqlite:///{tmp_path / 't.db'}"},
                "listen": {
                    "host": "127.0.0.1",
                    "port": port,
                    "tls": {"cert_file": str(pki.cert), "key_file": str(pki.key)},
                },
            }
        )
    )
    runner = await start_site(
        create_app(load_config(config_file)), "127.0.0.1", port, access_log=False
    )
    try:
        assert await asyncio.to_thread(main, ["health", "--config", str(config_file)]) == 0
    finally:
        await runner.cleanup()
    assert await asyncio.to_thread(main, ["health", "--config", str(config_file)]) == 1
