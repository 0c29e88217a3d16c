#!/usr/bin/env python3
"""Slow uploaders against apitokenproxy at its defaults, while valid users are served.

    python bench/slowupload.py [--uploads 260] [--duration 90] [--start-kib 300]

The attack of issue 18, item 12: anonymous POSTs that declare a large body,
send its first ``--start-kib`` KiB (past the 256 KiB the proxy reads before it
takes an upstream connection, so each upload streams and wants one), then
trickle one byte every five seconds, all from one address (127.0.1.1). The
proxy runs as ``serve`` runs it, in its DEFAULT configuration (one worker per
CPU, access log on, SQLite in a temporary folder), in front of the demo Jira
(apitokenproxy/demo.py) with an upload endpoint that reads whole bodies.

Meanwhile, from another address (127.0.2.1), every half second: a data-path
request with a valid token, and a token-API call with a password, which the
proxy checks with its own call to the upstream. The report: how the valid
requests fared (statuses, p50 and p99 latency), how the uploads ended (status
and when), and the upstream connections in use as the metrics saw them. It
exits non-zero if any valid request failed. Run it from another checkout
(PYTHONPATH) to compare versions: the defaults are the same.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from run import free, running  # bench/ holds scripts

UPSTREAM, PROXY = 18190, 18191
ATTACKER, USER = "127.0.1.1", "127.0.2.1"
API = "/rest/de.resolution.apitokenauth/latest"
ALICE = "Basic " + base64.b64encode(b"alice:alice").decode()


def serve_upstream(port: int) -> None:
    """The demo Jira, and an endpoint that reads a whole body before it answers."""
    from aiohttp import web

    from apitokenproxy.demo import create_demo_upstream

    async def upload(request: web.Request) -> web.Response:
        size = 0
        async for data in request.content.iter_any():
            size += len(data)
        return web.json_response({"received": size})

    app = create_demo_upstream()
    app.router.add_route("POST", "/upload", upload)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# Far beyond any answer a served client waits for; an answer later than this is a failure.
PATIENCE = 60.0


async def exchange(request: bytes, source: str) -> tuple[int, bytes]:
    """One request on its own connection from ``source``: (status, body); status 0 if cut."""
    reader, writer = await asyncio.open_connection("127.0.0.1", PROXY, local_addr=(source, 0))
    try:
        writer.write(request)
        async with asyncio.timeout(PATIENCE):
            head = await reader.readuntil(b"\r\n\r\n")
            found = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            body = await reader.readexactly(int(found.group(1))) if found else b""
        return int(head.split(b" ", 2)[1]), body
    except (asyncio.IncompleteReadError, ConnectionError):
        return 0, b""
    finally:
        writer.close()


def get(path: str, authorization: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: jira\r\nAuthorization: {authorization}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()


async def trickle(start_kib: int, began: float) -> tuple[int, float]:
    """One slow upload: its final status (0: cut without an answer) and when it ended."""
    reader, writer = await asyncio.open_connection("127.0.0.1", PROXY, local_addr=(ATTACKER, 0))
    try:
        writer.write(
            b"POST /upload HTTP/1.1\r\nHost: jira\r\nContent-Length: %d\r\n\r\n" % (64 << 20)
            + b"x" * (start_kib * 1024)
        )
        answer = asyncio.ensure_future(reader.readline())
        while not answer.done():
            with contextlib.suppress(ConnectionError):
                writer.write(b"x")
            await asyncio.wait((answer,), timeout=5.0)
        line = answer.result() if answer.exception() is None else b""
        return (int(line.split()[1]) if line else 0), time.monotonic() - began
    except ConnectionError:
        return 0, time.monotonic() - began
    finally:
        writer.close()


async def upstream_in_use() -> float:
    status, body = await exchange(
        b"GET /__apitokenproxy/metrics HTTP/1.1\r\nHost: jira\r\nConnection: close\r\n\r\n",
        "127.0.0.1",
    )
    values = re.findall(rb"(?m)^apitokenproxy_upstream_connections_in_use\S* (\S+)$", body)
    return sum(float(v) for v in values) if status == 200 else float("nan")


async def attack(args: argparse.Namespace, token: str) -> dict[str, object]:
    began = time.monotonic()
    uploads = [asyncio.ensure_future(trickle(args.start_kib, began)) for _ in range(args.uploads)]
    await asyncio.sleep(2)  # the uploads are in and streaming
    valid: dict[str, list[tuple[int, float]]] = {"token": [], "password": []}
    in_use: list[float] = []
    requests = {"token": get("/rest/api/2/issue/BENCH-1", "Bearer " + token),
                "password": get(f"{API}/user/token", ALICE)}  # fmt: skip

    async def one(kind: str) -> None:
        started = time.monotonic()
        status, _ = await exchange(requests[kind], USER)
        valid[kind].append((status, time.monotonic() - started))

    probes = []
    while time.monotonic() - began < args.duration:
        probes += [asyncio.ensure_future(one(kind)) for kind in requests]
        if len(probes) % 20 == 0:
            in_use.append(await upstream_in_use())
        await asyncio.sleep(0.5)
    await asyncio.gather(*probes)
    for upload in uploads:
        upload.cancel()
    ended = [u.result() for u in uploads if u.done() and not u.cancelled()]
    report: dict[str, object] = {}
    for kind, results in valid.items():
        seconds = sorted(s for _, s in results)
        report[kind] = {
            "requests": len(results),
            "statuses": dict(collections.Counter(status for status, _ in results)),
            "p50_ms": round(statistics.median(seconds) * 1000, 1),
            "p99_ms": round(seconds[min(len(seconds) - 1, int(len(seconds) * 0.99))] * 1000, 1),
        }
    report["uploads"] = {
        "started": args.uploads,
        "ended": dict(collections.Counter(status for status, _ in ended)),
        "still_open": args.uploads - len(ended),
        "ended_after_s": {
            "first": round(min((t for _, t in ended), default=float("nan")), 1),
            "last": round(max((t for _, t in ended), default=float("nan")), 1),
        },
    }
    report["upstream_connections_in_use"] = in_use
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=260)
    parser.add_argument("--duration", type=float, default=90.0)
    parser.add_argument("--start-kib", type=int, default=300)
    parser.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return
    for port in (UPSTREAM, PROXY):
        free(port)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        config = tmp / "config.yaml"
        # The defaults, but for where to listen and what to protect.
        config.write_text(
            f"listen: {{host: 127.0.0.1, port: {PROXY}}}\n"
            f"upstream: {{url: 'http://127.0.0.1:{UPSTREAM}'}}\n"
            f"store: {{url: 'sqlite:///{tmp / 'tokens.db'}'}}\n"
        )
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        upstream = [sys.executable, __file__, "--serve-upstream", str(UPSTREAM)]
        proxy = [sys.executable, "-m", "apitokenproxy", "serve", "-c", str(config)]
        with (
            running(upstream, UPSTREAM, tmp / "upstream.log", env),
            running(proxy, PROXY, tmp / "proxy.log", env),
        ):
            made = subprocess.run(
                [sys.executable, "-m", "apitokenproxy", "tokens", "create", "-c", str(config),
                 "--user-key", "JIRAUSER10100", "--user-name", "alice", "--description", "bench"],
                capture_output=True, text=True, check=True, env=env,
            )  # fmt: skip
            token = json.loads(made.stdout)["plainTextToken"]
            report = asyncio.run(attack(args, token))
        print(json.dumps(report, indent=2))
        failed = [
            kind
            for kind in ("token", "password")
            if set(report[kind]["statuses"]) != {200}  # type: ignore[index]
        ]
        if failed:
            sys.exit(f"valid requests refused while the uploads ran: {', '.join(failed)}")


if __name__ == "__main__":
    main()
