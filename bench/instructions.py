#!/usr/bin/env python3
"""CPU instructions one worker spends per request, counted by valgrind (callgrind).

    sudo apt-get install nginx valgrind
    python bench/instructions.py [--small 200] [--large 1200] [--connections 10]

Wall-clock throughput on a shared machine drifts by a third over minutes, so
two versions of the proxy measured minutes apart compare the machine as much
as the code. Instructions do not drift: this runs one worker (``workers: 1``,
otherwise the defaults, access log on) under callgrind in front of an nginx
upstream serving the 0.7 KB Jira user of bench/run.py, sends a fixed load of
token requests (the same ``Connection: keep-alive`` requests on
``--connections`` connections, one round at a time), and does it twice, with
``--small`` and ``--large`` requests; the difference, divided by the extra
requests, is what a request costs in user space (Python, uvloop, llhttp),
start-up and shutdown left out. The kernel's share (the socket reads and
writes) is not counted. Run it from two checkouts with PYTHONPATH to compare
them; the count is repeatable to about 0.1% on one machine, and means
nothing across Python builds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from run import jira_upstream, token_auth, wait_for_port, write_nginx_config  # bench/ holds scripts

UPSTREAM, PROXY = 18090, 18091
PATH = "/rest/api/2/user?username=alice"


def answer(sock: socket.socket) -> bytes:
    """Read one answer with a Content-Length body; return its status code."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            sys.exit("the proxy closed a connection")
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    found = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    assert found, head
    while len(body) < int(found.group(1)):
        body += sock.recv(65536)
    return head.split(b" ", 2)[1]


def load(requests: int, connections: int, authorization: str) -> None:
    request = (
        f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{PROXY}\r\nAuthorization: {authorization}\r\n"
        "User-Agent: bench-instructions/1\r\nAccept: application/json\r\n\r\n"
    ).encode()
    socks = [socket.create_connection(("127.0.0.1", PROXY)) for _ in range(connections)]
    try:
        for _ in range(requests // connections):
            for sock in socks:
                sock.sendall(request)
            for sock in socks:
                if (status := answer(sock)) != b"200":
                    sys.exit(f"the proxy answered {status.decode()}")
    finally:
        for sock in socks:
            sock.close()


def counted(config: Path, tmp: Path, requests: int, args: argparse.Namespace, auth: str) -> int:
    """Instructions of one proxy process that served ``requests`` requests, start to end."""
    out = tmp / f"callgrind.{requests}"
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
         sys.executable, "-m", "apitokenproxy", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=(tmp / f"proxy.{requests}.log").open("wb"),
    )  # fmt: skip
    try:
        wait_for_port(PROXY, 300)
        load(requests, args.connections, auth)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=300)
    found = re.search(r"^summary: (\d+)", out.read_text(), re.M)
    assert found, "callgrind wrote no summary"
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", type=int, default=200, help="requests of the first run")
    parser.add_argument("--large", type=int, default=1200, help="requests of the second run")
    parser.add_argument("--connections", type=int, default=10, help="keep-alive connections")
    args = parser.parse_args()
    missing = [tool for tool in ("nginx", "valgrind") if not shutil.which(tool)]
    if missing:
        sys.exit(f"missing: {', '.join(missing)} (apt-get install nginx valgrind)")

    tmp = Path(tempfile.mkdtemp(prefix="apitokenproxy-instructions-"))
    write_nginx_config(tmp, jira_upstream(tmp, UPSTREAM), connections=1024)
    config = tmp / "proxy.yaml"
    config.write_text(f"""
listen: {{host: 127.0.0.1, port: {PROXY}, workers: 1}}
upstream: {{url: "http://127.0.0.1:{UPSTREAM}", product: jira}}
store: {{url: "sqlite:///{tmp}/tokens.db"}}
""")
    auth = token_auth(config, (sys.executable, "-m", "apitokenproxy"))
    nginx = subprocess.Popen(
        ["nginx", "-p", str(tmp), "-c", str(tmp / "nginx.conf")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_port(UPSTREAM, 20)
        small = counted(config, tmp, args.small, args, auth)
        large = counted(config, tmp, args.large, args, auth)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(nginx.pid, signal.SIGTERM)
        nginx.wait(timeout=15)
    per_request = (large - small) / (args.large - args.small)
    print(f"{per_request / 1000:.1f} K instructions per request "
          f"({small} for {args.small} requests, {large} for {args.large})")  # fmt: skip
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
