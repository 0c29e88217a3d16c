#!/usr/bin/env python3
"""Benchmark apitokenproxy against the direct upstream, nginx and Caddy, in one run.

    sudo apt-get install nginx wrk caddy
    pip install '.[postgres]'
    python bench/run.py [--duration 10] [--rounds 3] [--connections 50] [--soak 0]
                        [--variants] [--postgres URL]

Everything runs on this machine, on loopback:

    upstream   nginx returning Jira JSON: a small answer (0.7 KB, a user) and
               a full issue (8 KB)
    nginx      nginx as a plain reverse proxy (no authentication)
    caddy      Caddy with basic auth (bcrypt, hash cache on) and
               header_up X-Forwarded-User, the closest off-the-shelf peer
    apitoken   apitokenproxy with a valid token in Basic auth, on SQLite, in
               its DEFAULT configuration (workers, access log, log level):
               what users run is what is measured
    variants   with --variants: the same with the access log off, and with
               the fast lane off, to show what each costs
    pg x2      with --postgres: two apitokenproxy instances (one worker each)
               sharing one PostgreSQL store, loaded at the same time

Each target gets the same wrk load (same threads, connections, duration),
one after the other, in ``--rounds`` rounds; each number is the median of
the rounds, and each ratio the median of the rounds' ratios, because a
shared machine's speed drifts over minutes. The numbers of one run compare
with each other; numbers from different runs or machines do not. Then one
connection each against the upstream and apitokenproxy shows the latency
the proxy adds, and the proxy workers' memory is read before and after.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

PORTS = {"upstream": 18080, "nginx": 18081, "caddy": 18082, "apitoken": 18083,
         "pg1": 18084, "pg2": 18085, "nolog": 18086, "slowlane": 18087,
         "authreq": 18088}  # fmt: skip
USER, PASSWORD = "alice", "bench-password-1"
PATHS = {"0.7 KB": "/rest/api/2/user?username=alice", "8 KB": "/rest/api/2/issue/BENCH-1"}
PATH = PATHS["8 KB"]


@dataclass
class Result:
    target: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def issue_json() -> bytes:
    """A Jira REST issue of a typical size, fields and all."""
    comments = [
        {
            "id": str(10000 + i),
            "author": {"name": "alice", "key": "JIRAUSER10100", "displayName": "Alice Example"},
            "body": "Looked into this; the build fails on the integration stage. " * 3,
            "created": f"2026-11-0{i % 9 + 1}T10:00:00.000+0000",
        }
        for i in range(10)
    ]
    issue = {
        "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
        "id": "10042",
        "self": "https://jira.example.com/rest/api/2/issue/10042",
        "key": "BENCH-1",
        "fields": {
            "summary": "Nightly export job times out after the upgrade",
            "issuetype": {"id": "1", "name": "Bug", "subtask": False},
            "status": {
                "id": "3",
                "name": "In Progress",
                "statusCategory": {"key": "indeterminate"},
            },
            "priority": {"id": "2", "name": "High"},
            "labels": ["export", "performance", "upgrade"],
            "reporter": {"name": "bob", "key": "JIRAUSER10105", "displayName": "Bob Example"},
            "assignee": {"name": "alice", "key": "JIRAUSER10100", "displayName": "Alice Example"},
            "description": "After upgrading to 9.12 the nightly export job fails. " * 8,
            "comment": {"comments": comments, "maxResults": 10, "total": 10, "startAt": 0},
        },
    }
    return json.dumps(issue, indent=1).encode()


def user_json() -> bytes:
    """A Jira REST user, about 0.7 KB: the size of most small REST answers."""
    user = {
        "self": "https://jira.example.com/rest/api/2/user?username=alice",
        "key": "JIRAUSER10100",
        "name": "alice",
        "emailAddress": "alice@example.com",
        "avatarUrls": {
            size: f"https://jira.example.com/secure/useravatar?size={name}&avatarId=10341"
            for size, name in (
                ("48x48", "large"),
                ("24x24", "small"),
                ("16x16", "xsmall"),
                ("32x32", "medium"),
            )
        },
        "displayName": "Alice Example",
        "active": True,
        "deleted": False,
        "timeZone": "Europe/Berlin",
        "locale": "en_US",
        "groups": {"size": 3, "items": []},
        "applicationRoles": {"size": 1, "items": []},
        "expand": "groups,applicationRoles",
    }
    return json.dumps(user, indent=1).encode()


def jira_upstream(tmp: Path, port: int) -> str:
    """Write the Jira answers into ``tmp`` and return the nginx server that serves them."""
    (tmp / "issue.json").write_bytes(issue_json())
    (tmp / "user.json").write_bytes(user_json())
    return f"""
    server {{
        listen 127.0.0.1:{port} reuseport;
        location = /rest/api/2/user {{ root {tmp}; try_files /user.json =404; }}
        location / {{ root {tmp}; try_files /issue.json =404; }}
    }}"""


def write_nginx_config(tmp: Path, servers: str, *, connections: int = 4096) -> Path:
    """An nginx.conf in ``tmp`` (one worker, in the foreground, no access log) whose
    http block holds ``servers``; returns its path."""
    tmp.chmod(0o755)  # nginx workers run unprivileged and must read the answers
    path = tmp / "nginx.conf"
    path.write_text(f"""
worker_processes 1;
daemon off;
error_log {tmp}/nginx-error.log warn;
pid {tmp}/nginx.pid;
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    default_type application/json;
{servers}
}}
""")
    return path


def free(port: int) -> None:
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            sys.exit(f"port {port} is in use; stop whatever listens there first")


def wait_for_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    sys.exit(f"nothing listens on port {port} after {timeout} s")


@contextlib.contextmanager
def running(
    cmd: list[str], port: int, log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            wait_for_port(port)
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    assert match, text
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk_start(
    port: int, connections: int, duration: int, auth: str | None, path: str = PATH
) -> subprocess.Popen[str]:
    cmd = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{duration}s", "--latency"]
    if auth:
        cmd += ["-H", f"Authorization: {auth}"]
    return subprocess.Popen(
        [*cmd, f"http://127.0.0.1:{port}{path}"], stdout=subprocess.PIPE, text=True
    )


def wrk_result(target: str, connections: int, proc: subprocess.Popen[str]) -> Result:
    out, _ = proc.communicate()
    if proc.returncode:
        sys.exit(f"wrk failed for {target}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    errors = 0
    if found := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(found.group(1))
    if found := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    ):
        errors += sum(int(g) for g in found.groups())
    return Result(target, connections, rps, p50, p99, errors)


def wrk(
    target: str, port: int, connections: int, duration: int, auth: str | None, path: str = PATH
) -> Result:
    return wrk_result(target, connections, wrk_start(port, connections, duration, auth, path))


def wrk_together(
    target: str, ports: list[int], connections: int, duration: int, auth: str | None
) -> Result:
    """Load several instances at once, connections split evenly; throughput adds up.

    The latency columns are the worst instance's p50 and p99, not a merged
    distribution.
    """
    share = max(1, connections // len(ports))
    procs = [wrk_start(port, share, duration, auth) for port in ports]
    parts = [wrk_result(target, share, proc) for proc in procs]
    return Result(
        target,
        share * len(ports),
        sum(p.rps for p in parts),
        max(p.p50_ms for p in parts),
        max(p.p99_ms for p in parts),
        sum(p.errors for p in parts),
    )


def median_of(rounds: list[Result]) -> list[Result]:
    """One result per target, in first-seen order: the median of its rounds' numbers."""
    targets = list(dict.fromkeys(r.target for r in rounds))
    out = []
    for target in targets:
        mine = [r for r in rounds if r.target == target]
        out.append(Result(
            target,
            mine[0].connections,
            statistics.median(r.rps for r in mine),
            statistics.median(r.p50_ms for r in mine),
            statistics.median(r.p99_ms for r in mine),
            sum(r.errors for r in mine),
        ))  # fmt: skip
    return out


def basic_auth(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def token_auth(config: Path, command: tuple[str, ...] = ("apitokenproxy",)) -> str:
    """Basic auth with a new token for USER, made by the CLI in ``config``'s store."""
    made = json.loads(subprocess.run(
        [*command, "tokens", "create", "-c", str(config),
         "--user-key", "JIRAUSER10100", "--user-name", USER, "--description", "bench"],
        capture_output=True, text=True, check=True,
    ).stdout)  # fmt: skip
    return basic_auth(USER, made["plainTextToken"])


def prime(port: int, auth: str | None) -> None:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{PATH}")
    if auth:
        request.add_header("Authorization", auth)
    with urllib.request.urlopen(request, timeout=30) as response:
        if response.status != 200:
            sys.exit(f"port {port} answered {response.status} to a valid request")


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def children(pid: int) -> list[int]:
    """The worker processes of a server (multiprocessing's resource tracker left out)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    pids = [int(p) for p in out.split()]
    return [p for p in pids if b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()]


def two_instances_on_postgres(args: argparse.Namespace, tmp: Path) -> Result:
    """Two separate instances (one worker each) sharing one PostgreSQL store."""
    import asyncio

    import asyncpg

    schema = f"bench_{os.getpid()}"

    async def sql(statement: str) -> None:
        conn = await asyncpg.connect(args.postgres)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(sql(f"CREATE SCHEMA {schema}"))
    url = f"{args.postgres}{'&' if '?' in args.postgres else '?'}search_path={schema}"
    configs = []
    for name in ("pg1", "pg2"):
        path = tmp / f"{name}.yaml"
        path.write_text(f"""
listen: {{host: 127.0.0.1, port: {PORTS[name]}, workers: 1}}
upstream: {{url: "http://127.0.0.1:{PORTS["upstream"]}", product: jira}}
store: {{url: "{url}"}}
logging: {{level: WARNING, access_log: false}}
""")
        configs.append(path)
    try:
        auth = token_auth(configs[0])
        ports = [PORTS["pg1"], PORTS["pg2"]]
        with (
            running(["apitokenproxy", "serve", "--config", str(configs[0])], ports[0],
                    tmp / "pg1.log"),
            running(["apitokenproxy", "serve", "--config", str(configs[1])], ports[1],
                    tmp / "pg2.log"),
        ):  # fmt: skip
            for port in ports:
                prime(port, auth)
            name = "apitokenproxy x2 instances, PostgreSQL"
            wrk_together(name, ports, args.connections, 2, auth)
            return wrk_together(name, ports, args.connections, args.duration, auth)
    finally:
        asyncio.run(sql(f"DROP SCHEMA {schema} CASCADE"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--duration", type=int, default=10, help="seconds per target and round (default 10)"
    )
    parser.add_argument("--connections", type=int, default=50, help="wrk connections (default 50)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of every target; medians are reported, ratios taken per round (default 3)",
    )
    parser.add_argument(
        "--variants",
        action="store_true",
        help="also measure apitokenproxy with the access log off and with the fast lane off",
    )
    parser.add_argument(
        "--soak", type=int, default=0, help="extra seconds of load on apitokenproxy to watch memory"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="also run two apitokenproxy instances (one worker each) on this PostgreSQL "
        "database, in a schema of their own, e.g. postgresql://postgres@127.0.0.1:5432/postgres",
    )
    args = parser.parse_args()

    missing = [
        tool for tool in ("nginx", "wrk", "caddy", "apitokenproxy") if not shutil.which(tool)
    ]
    if missing:
        sys.exit(f"missing: {', '.join(missing)} (apt-get install nginx wrk caddy; pip install .)")
    for port in PORTS.values():
        free(port)

    tmp = Path(tempfile.mkdtemp(prefix="apitokenproxy-bench-"))
    write_nginx_config(
        tmp,
        f"""
    upstream jira {{ server 127.0.0.1:{PORTS["upstream"]}; keepalive 128; }}
{jira_upstream(tmp, PORTS["upstream"])}
    server {{
        listen 127.0.0.1:{PORTS["nginx"]};
        location / {{
            proxy_pass http://jira;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
    # nginx in front, asking apitokenproxy (docs/front-proxies.md): the forward-auth mode.
    upstream apitokenproxy {{ server 127.0.0.1:{PORTS["apitoken"]}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{PORTS["authreq"]};
        location = /__apitokenproxy_auth {{
            internal;
            proxy_pass http://apitokenproxy/__apitokenproxy/auth;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Forwarded-Method $request_method;
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header Upgrade $http_upgrade;
        }}
        location / {{
            auth_request /__apitokenproxy_auth;
            auth_request_set $user $upstream_http_x_forwarded_user;
            auth_request_set $authorization $upstream_http_x_apitokenproxy_authorization;
            proxy_set_header X-Forwarded-User $user;
            proxy_set_header Authorization $authorization;
            proxy_pass http://jira;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}""",
    )
    bcrypt_hash = subprocess.run(
        ["caddy", "hash-password", "--plaintext", PASSWORD],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    caddy_config = {
        "admin": {"disabled": True},
        "logging": {"logs": {"default": {"level": "ERROR"}}},
        "apps": {"http": {"servers": {"bench": {
            "listen": [f"127.0.0.1:{PORTS['caddy']}"],
            "automatic_https": {"disable": True},
            "routes": [{"handle": [
                {"handler": "authentication", "providers": {"http_basic": {
                    "accounts": [{"username": USER, "password": bcrypt_hash}],
                    "hash": {"algorithm": "bcrypt"},
                    "hash_cache": {},
                }}},
                {"handler": "reverse_proxy",
                 "upstreams": [{"dial": f"127.0.0.1:{PORTS['upstream']}"}],
                 "headers": {"request": {"set": {"X-Forwarded-User": ["{http.auth.user.id}"]}}}},
            ]}],
        }}}},
    }  # fmt: skip
    (tmp / "caddy.json").write_text(json.dumps(caddy_config))
    # The defaults are what users run, so nothing but the addresses is set.
    variants = {"apitoken": "", "nolog": "logging: {access_log: false}",
                "slowlane": "proxy: {fast_path: false}"}  # fmt: skip
    for name, extra in variants.items():
        (tmp / f"{name}.yaml").write_text(f"""
listen: {{host: 127.0.0.1, port: {PORTS[name]}}}
upstream: {{url: "http://127.0.0.1:{PORTS["upstream"]}", product: jira}}
store: {{url: "sqlite:///{tmp}/tokens.db"}}
{extra}
""")
    token = token_auth(tmp / "apitoken.yaml")
    targets = [
        ("upstream (nginx, direct)", PORTS["upstream"], None),
        ("nginx proxy, no auth", PORTS["nginx"], None),
        ("caddy basic_auth + header_up", PORTS["caddy"], basic_auth(USER, PASSWORD)),
        ("apitokenproxy, token, defaults", PORTS["apitoken"], token),
        ("nginx + auth_request to apitokenproxy", PORTS["authreq"], token),
    ]
    if args.variants:
        targets += [
            ("apitokenproxy, access log off", PORTS["nolog"], token),
            ("apitokenproxy, fast lane off", PORTS["slowlane"], token),
        ]
    results: list[Result] = []
    rounds: list[Result] = []  # every round's result, in order
    env = {**os.environ, "GOMAXPROCS": str(os.cpu_count() or 2)}
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            running(
                ["nginx", "-p", str(tmp), "-c", str(tmp / "nginx.conf")],
                PORTS["nginx"],
                tmp / "nginx.log",
            )
        )
        stack.enter_context(
            running(
                ["caddy", "run", "--config", str(tmp / "caddy.json")],
                PORTS["caddy"],
                tmp / "caddy.log",
                env,
            )
        )
        proxy = stack.enter_context(
            running(
                ["apitokenproxy", "serve", "--config", str(tmp / "apitoken.yaml")],
                PORTS["apitoken"],
                tmp / "apitoken.log",
            )
        )
        if args.variants:
            for name in ("nolog", "slowlane"):
                stack.enter_context(
                    running(
                        ["apitokenproxy", "serve", "--config", str(tmp / f"{name}.yaml")],
                        PORTS[name],
                        tmp / f"{name}.log",
                    )
                )
        time.sleep(1.0)  # every worker bound
        workers = children(proxy.pid) or [proxy.pid]
        for name, port, auth in targets:
            # One request first: it fills the credential caches (Caddy's bcrypt at
            # cost 14 takes about a second), then a short load warms the pools.
            prime(port, auth)
            wrk(name, port, args.connections, 2, auth)
        rss_before = rss_kib(workers)
        # Rounds, each measuring every target once: a shared machine's speed drifts
        # over minutes, so each ratio is taken within a round (targets minutes
        # apart would compare the machine, not the proxies), and medians reported.
        for _ in range(args.rounds):
            for size, path in PATHS.items():
                for name, port, auth in targets:
                    rounds.append(
                        wrk(f"{name}, {size}", port, args.connections, args.duration, auth, path)
                    )
        results.extend(median_of(rounds))
        for name, port, auth in (targets[0], targets[3]):
            results.append(wrk(f"{name}, 8 KB", port, 1, max(5, args.duration // 2), auth))
        if args.soak:
            results.append(
                wrk(targets[3][0], targets[3][1], args.connections, args.soak, targets[3][2])
            )
        rss_after = rss_kib(workers)
        if args.postgres:
            results.append(two_instances_on_postgres(args, tmp))

    def find(target: str) -> Result:
        return next(r for r in results if r.target == target and r.connections == args.connections)

    def per_round(ours: str, theirs: str) -> list[float]:
        """The ratio of two targets' throughput in each round."""
        a = [r.rps for r in rounds if r.target == ours]
        b = [r.rps for r in rounds if r.target == theirs]
        return [x / y for x, y in zip(a, b, strict=True)]

    print(f"\n{args.connections} connections, {args.rounds} rounds of {args.duration} s per "
          f"target (medians), wrk -t1, {os.cpu_count()} cores, apitokenproxy with its default "
          f"configuration ({len(workers)} workers)\n")  # fmt: skip
    print(f"{'target':44} {'conns':>5} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for r in results:
        print(
            f"{r.target:44} {r.connections:>5} {r.rps:>10.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.errors:>7}"
        )
    ratios = {}
    for size in PATHS:
        caddy = find(f"caddy basic_auth + header_up, {size}")
        ours = find(f"apitokenproxy, token, defaults, {size}")
        nginx = find(f"nginx proxy, no auth, {size}")
        each = per_round(ours.target, caddy.target)
        ratios[size] = statistics.median(each)
        print(f"\n{size}: apitokenproxy / caddy throughput {ratios[size]:.2f} (median of the "
              f"rounds' {', '.join(f'{r:.2f}' for r in each)}), "
              f"p99 {ours.p99_ms:.2f} ms against caddy's {caddy.p99_ms:.2f} ms; "
              f"/ nginx proxy {ours.rps / nginx.rps:.2f}")  # fmt: skip
        front = find(f"nginx + auth_request to apitokenproxy, {size}")
        print(f"  nginx + auth_request: {front.rps / caddy.rps:.2f} of caddy "
              f"({front.rps / ours.rps:.2f} of the full proxy), p99 {front.p99_ms:.2f} ms")  # fmt: skip
        if args.variants:
            for variant in ("access log off", "fast lane off"):
                other = find(f"apitokenproxy, {variant}, {size}")
                print(f"  {variant}: {other.rps / caddy.rps:.2f} of caddy "
                      f"({other.rps / ours.rps:.2f} of the defaults)")  # fmt: skip
    direct1 = next(r for r in results if r.connections == 1 and r.target.startswith("upstream"))
    ours1 = next(r for r in results if r.connections == 1 and r.target.startswith("apitokenproxy"))
    print(f"latency added at one connection (p50): {ours1.p50_ms - direct1.p50_ms:.3f} ms")
    print(
        f"proxy workers' RSS: {rss_before / 1024:.1f} MiB before, {rss_after / 1024:.1f} MiB after"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "results": [asdict(r) for r in results],
            "ratio_vs_caddy": ratios,
            "rounds": [asdict(r) for r in rounds],
            "added_latency_ms": ours1.p50_ms - direct1.p50_ms,
            "rss_kib": {"before": rss_before, "after": rss_after},
        }, indent=2))  # fmt: skip
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
