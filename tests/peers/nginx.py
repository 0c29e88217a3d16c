"""A real nginx in front of things, for the tests of the forward-auth mode.

Debian's ``nginx-light`` has ``auth_request``; ``.ci/run`` installs it. The
fixture fails, never skips, when nginx is missing.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

INSTALL = "apt-get install -y nginx-light"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_nginx(root: Path, http_block: str) -> Iterator[None]:
    """nginx with one ``http { ... }`` body, its files under ``root``, until the block ends."""
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if binary is None:
        pytest.fail(f"nginx is not installed: {INSTALL}")
    root.mkdir(parents=True, exist_ok=True)
    (root / "nginx.conf").write_text(
        f"""
daemon off;
user root;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
{http_block}
}}
"""
    )
    proc = subprocess.Popen(  # noqa: S603 - nginx, with a config this test wrote
        [binary, "-p", str(root), "-c", str(root / "nginx.conf")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while not (root / "nginx.pid").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"nginx did not start:\n{out}\n{(root / 'error.log').read_text()}")
            time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
