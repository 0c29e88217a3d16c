"""Both lanes give the same answer to the same exchange: status, headers and body.

uvicorn runs one suite over its two HTTP implementations; every end-to-end
test here runs on both lanes (the ``lane`` fixture). This test goes further
and puts the two side by side: one world per lane, the same raw requests,
and the answers compared byte for byte apart from the headers that must
differ (the time of day).
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

from apitokenproxy.app import create_app
from apitokenproxy.config import config_from_dict
from apitokenproxy.server import start_site

from ..conftest import LANES, FakeClock, base_config, deep_merge
from ..fakes import JIRA_USERS, FakeUpstream

API = "/rest/de.resolution.apitokenauth/latest"
VARYING = {b"date"}


async def answers(port: int, requests: list[bytes]) -> list[bytes]:
    out = []
    for request in requests:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        out.append(await asyncio.wait_for(reader.read(), 5))
        writer.close()
    return out


def comparable(answer: bytes) -> tuple[bytes, list[bytes], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    kept = sorted(
        # An id the proxy made (the request sent none it could read) differs by design.
        b"X-Request-Id: (made)" if line.startswith(b"X-Request-Id: ") and b"-" in line else line
        for line in lines
        if line.split(b":")[0].lower() not in VARYING
    )
    # aiohttp answers a request it could not parse as HTTP/1.0 (it never saw a version).
    return status.partition(b" ")[2], kept, body


def get(path: str, *headers: str, method: str = "GET") -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: jira.example.com",
        "X-Request-Id: lanes",
        *headers,
        "Connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def test_both_lanes_answer_alike(aiohttp_server: Any, tmp_path: Path) -> None:
    upstream = FakeUpstream("jira", JIRA_USERS)
    server = await aiohttp_server(upstream.app())
    url = str(server.make_url("")).rstrip("/")
    ports = {}
    runners = []
    for lane in LANES:
        raw = deep_merge(base_config(url, f"sqlite:///{tmp_path / lane}.db"), LANES[lane])
        app = create_app(config_from_dict(raw), clock=FakeClock())
        runner = await start_site(app, "127.0.0.1", 0, access_log=False)
        runners.append(runner)
        ports[lane] = runner.addresses[0][1]
    try:
        basic = base64.b64encode(b"alice:alice-pw").decode()
        tokens = {}
        for lane, port in ports.items():
            body = b'{"tokenDescription": "lanes"}'
            (made,) = await answers(port, [
                f"POST {API}/user/token HTTP/1.1\r\nHost: j\r\nConnection: close\r\n"
                f"Authorization: Basic {basic}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
            ])  # fmt: skip
            tokens[lane] = json.loads(made.partition(b"\r\n\r\n")[2])["plainTextToken"]
        rows = {
            "anonymous echo": lambda t: get("/rest/api/2/issue/X-1?expand=names"),
            "token": lambda t: get("/rest/api/2/issue/X-1", f"Authorization: Bearer {t}"),
            "HEAD": lambda t: get("/_test/download?size=10&length=1", method="HEAD"),
            "download, chunked": lambda t: get("/_test/download?size=70000&chunk=7000"),
            "download, sized": lambda t: get("/_test/download?size=300000&length=1"),
            "204": lambda t: get("/_test/status/204"),
            "304": lambda t: get("/_test/status/304"),
            "302": lambda t: get("/_test/status/302"),
            "cookies and hop-by-hop": lambda t: get("/_test/cookies"),
            "gzip": lambda t: get("/_test/gzip"),
            "bad token": lambda t: get("/x", "Authorization: Bearer atpx_1_" + "A" * 38),
            "bad token, HEAD": lambda t: get("/x", "Authorization: Basic !!!", method="HEAD"),
            "bad target": lambda t: b"GET /a\x7fb HTTP/1.1\r\nHost: j\r\nConnection: close\r\n\r\n",
        }
        for name, make in rows.items():
            fast, slow = [
                comparable((await answers(ports[lane], [make(tokens[lane])]))[0])
                for lane in ("fast", "aiohttp")
            ]
            assert fast == slow, name
    finally:
        for runner in runners:
            await runner.cleanup()
