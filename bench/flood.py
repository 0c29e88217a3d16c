#!/usr/bin/env python3
"""Flood apitokenproxy with bad tokens, and time the first uses of valid ones meanwhile.

    sudo apt-get install nginx
    pip install .
    python bench/flood.py [--seconds 30] [--shape mix] [--sources 64] [--connections 4]
                          [--uses 50] [--every 0.5] [--warmup 4] [--flooders 1]

Issue 18, item 11: a cheap flood of well-formed bad tokens must not starve
the checks of good ones. Everything runs on this machine, on loopback:

    upstream    nginx returning Jira JSON (bench/run.py's), the owner's user
                lookup included
    proxy       apitokenproxy in its DEFAULT configuration (one worker per CPU,
                access log on), on SQLite in a temporary folder: what users
                run is what is measured
    flood       --sources source addresses (127.0.1.1, 127.0.1.2, ...; all of
                127.0.0.0/8 is local on Linux) x --connections keep-alive
                connections each, sending well-formed bad tokens as fast as
                the proxy answers, for --seconds
    first uses  --uses new valid tokens, each used once, for the first time,
                from 127.0.2.1 on a new connection, one every --every seconds,
                starting once the flood has run for --warmup seconds

Flood shapes (--shape): ``unknown`` (random ids no token has), ``wrong``
(the valid tokens' own ids with a new wrong secret each time), ``repeat``
(one bad token for a real id, over and over) and ``mix`` (the three in turn).

The report gives the flood's rate and statuses, and for the first uses of the
valid tokens how many succeeded, their statuses and their p50, p99 and
slowest latency (p99 by nearest rank: with 50 uses, the slowest). Exit
status 1 when any first use is refused or their p99 reaches --bar seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import math
import multiprocessing
import multiprocessing.queues
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httptools

from apitokenproxy.auth.hashing import SecretHasher
from apitokenproxy.auth.tokens import format_token, new_secret
from apitokenproxy.store import NewToken, opened
from apitokenproxy.store.audit import Action, How

sys.path.insert(0, str(Path(__file__).parent))
from run import free, jira_upstream, running, write_nginx_config

PORTS = {"upstream": 18180, "proxy": 18183}
# bench/run.py's upstream answers the owner lookup (/rest/api/2/user) with this user.
OWNER_KEY, OWNER_NAME = "JIRAUSER10100", "alice"
PATH = "/rest/api/2/issue/BENCH-1"
PROBER = "127.0.2.1"
SHAPES = ("unknown", "wrong", "repeat")
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def request(token: str, *, close: bool = False) -> bytes:
    connection = "Connection: close\r\n" if close else ""
    return (
        f"GET {PATH} HTTP/1.1\r\nHost: jira.example.com\r\n{connection}"
        f"Authorization: Bearer {token}\r\n\r\n"
    ).encode()


def bad_tokens(shape: str, real_ids: list[int], seed: int) -> Iterator[str]:
    """Well-formed bad tokens (the checksum holds) of one shape, or of all in turn."""
    rng = random.Random(seed)  # noqa: S311 (bad tokens, reproducible: not secrets)

    def secret() -> str:
        return "".join(rng.choices(ALPHABET, k=32))

    repeated = format_token(real_ids[0], secret())
    makers = {
        "unknown": lambda: format_token(rng.randrange(10**6, 10**9), secret()),
        "wrong": lambda: format_token(rng.choice(real_ids), secret()),
        "repeat": lambda: repeated,
    }
    chosen = SHAPES if shape == "mix" else (shape,)
    while True:
        for name in chosen:
            yield makers[name]()


class Flooder(asyncio.Protocol):
    """One keep-alive connection sending a bad token as soon as the last one is answered."""

    def __init__(self, tokens: Iterator[str], counts: Counter[int], deadline: float) -> None:
        self._tokens = tokens
        self._counts = counts
        self._deadline = deadline
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._send()

    def _send(self) -> None:
        assert self._transport is not None
        self._transport.write(request(next(self._tokens)))

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._counts[0] += 1
            assert self._transport is not None
            self._transport.close()

    def on_message_complete(self) -> None:
        self._counts[self._parser.get_status_code()] += 1
        assert self._transport is not None
        if time.monotonic() < self._deadline and self._parser.should_keep_alive():
            self._send()
        else:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def flood_from(
    source: str, port: int, tokens: Iterator[str], counts: Counter[int], deadline: float
) -> None:
    """One connection's worth of flood, reconnecting whenever the proxy closes it."""
    loop = asyncio.get_running_loop()
    while time.monotonic() < deadline:
        try:
            _, protocol = await loop.create_connection(
                lambda: Flooder(tokens, counts, deadline), "127.0.0.1", port, local_addr=(source, 0)
            )
        except OSError:
            counts[-1] += 1  # a refused connection
            await asyncio.sleep(0.01)
            continue
        await protocol.closed
        counts[-2] += 1  # connections opened


def flood(
    port: int,
    sources: list[str],
    connections: int,
    seconds: float,
    shape: str,
    real_ids: list[int],
    seed: int,
    out: multiprocessing.queues.Queue[tuple[dict[int, int], float]],
) -> None:
    """Run a flood process: every source address, ``connections`` connections each."""

    async def run() -> tuple[dict[int, int], float]:
        counts: Counter[int] = Counter()
        tokens = bad_tokens(shape, real_ids, seed)
        started = time.monotonic()
        deadline = started + seconds
        await asyncio.gather(
            *(
                flood_from(source, port, tokens, counts, deadline)
                for source in sources
                for _ in range(connections)
            )
        )
        return dict(counts), time.monotonic() - started

    out.put(asyncio.run(run()))


def first_use(port: int, token: str) -> tuple[int, float]:
    """One first use of a valid token on a new connection: its status and seconds."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(PROBER, 0))
    try:
        conn.request("GET", PATH, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        response.read()
        status = response.status
    except (OSError, http.client.HTTPException):
        status = 0
    finally:
        conn.close()
    return status, time.perf_counter() - started


async def create_tokens(store_url: str, count: int) -> list[str]:
    """``count`` new tokens of the upstream's user, written straight into the store."""
    hasher = SecretHasher(workers=2)
    now = time.time_ns() // 1_000_000
    action = Action(at=now, actor_key="bench", actor_name="bench", how=How.CLI)
    try:
        async with opened(store_url) as store:
            tokens = []
            for i in range(count):
                secret = new_secret()
                record = await store.create(
                    NewToken(
                        owner_key=OWNER_KEY,
                        owner_name=OWNER_NAME,
                        description=f"flood bench {i}",
                        secret_hash=await hasher.hash(secret),
                        created=now,
                        valid_until=None,
                        created_by_key="bench",
                    ),
                    action,
                )
                tokens.append(format_token(record.id, secret))
            return tokens
    finally:
        hasher.close()


def nearest_rank(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=30, help="flood length (default 30)")
    parser.add_argument("--shape", choices=(*SHAPES, "mix"), default="mix")
    parser.add_argument("--sources", type=int, default=64, help="flood addresses (default 64)")
    parser.add_argument(
        "--connections", type=int, default=4, help="keep-alive connections per address (4)"
    )
    parser.add_argument("--uses", type=int, default=50, help="valid first uses (default 50)")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between them (0.5)")
    parser.add_argument(
        "--warmup", type=float, default=4, help="flood seconds before the first use (default 4)"
    )
    parser.add_argument(
        "--flooders", type=int, default=1, help="flood processes, sharing the addresses (1)"
    )
    parser.add_argument("--bar", type=float, default=1.0, help="p99 bar in seconds (1.0)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not 1 <= args.sources <= 254:
        parser.error("--sources: 1 to 254 (127.0.1.1 to 127.0.1.254)")
    if args.warmup + args.uses * args.every >= args.seconds:
        parser.error("the first uses must end before the flood: raise --seconds")
    if not shutil.which("nginx"):
        sys.exit("missing: nginx (apt-get install nginx)")
    for port in PORTS.values():
        free(port)

    tmp = Path(tempfile.mkdtemp(prefix="apitokenproxy-flood-"))
    write_nginx_config(tmp, jira_upstream(tmp, PORTS["upstream"]))
    store_url = f"sqlite:///{tmp}/tokens.db"
    # The defaults are what users run, so nothing but the addresses is set.
    (tmp / "proxy.yaml").write_text(f"""
listen: {{host: 127.0.0.1, port: {PORTS["proxy"]}}}
upstream: {{url: "http://127.0.0.1:{PORTS["upstream"]}", product: jira}}
store: {{url: "{store_url}"}}
""")
    tokens = asyncio.run(create_tokens(store_url, args.uses))
    real_ids = [int(token.split("_")[1]) for token in tokens]
    addresses = [f"127.0.1.{i}" for i in range(1, args.sources + 1)]
    results: list[tuple[int, float]] = []
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            running(["nginx", "-p", str(tmp), "-c", str(tmp / "nginx.conf")], PORTS["upstream"],
                    tmp / "nginx.log")
        )  # fmt: skip
        stack.enter_context(
            running([sys.executable, "-m", "apitokenproxy", "serve", "--config",
                     str(tmp / "proxy.yaml")], PORTS["proxy"], tmp / "proxy.log")
        )  # fmt: skip
        time.sleep(1.0)  # every worker bound
        queue: multiprocessing.queues.Queue[tuple[dict[int, int], float]] = multiprocessing.Queue()
        flooders = [
            multiprocessing.Process(
                target=flood,
                args=(
                    PORTS["proxy"],
                    addresses[i :: args.flooders],
                    args.connections,
                    args.seconds,
                    args.shape,
                    real_ids,
                    i,
                    queue,
                ),
            )
            for i in range(args.flooders)
        ]
        for process in flooders:
            process.start()
        next_at = time.monotonic() + args.warmup
        for token in tokens:
            time.sleep(max(0.0, next_at - time.monotonic()))
            results.append(first_use(PORTS["proxy"], token))
            next_at += args.every
        parts = [queue.get(timeout=args.seconds + 60) for _ in flooders]
        for process in flooders:
            process.join()

    counts: Counter[int] = Counter()
    for part, _ in parts:
        counts.update(part)
    elapsed = max(seconds for _, seconds in parts)
    opened_connections, refused = counts.pop(-2, 0), counts.pop(-1, 0)
    answered = sum(counts.values())
    statuses = Counter(status for status, _ in results)
    latencies = [seconds for _, seconds in results]
    ok = statuses[200]
    p50, p99 = statistics.median(latencies), nearest_rank(latencies, 0.99)
    print(f"\nflood: {args.shape}, {args.sources} addresses x {args.connections} connections, "
          f"{args.flooders} process(es), {elapsed:.1f} s: {answered} answers, "
          f"{answered / elapsed:.0f} req/s; statuses {dict(sorted(counts.items()))}; "
          f"{opened_connections} connections opened, {refused} refused")  # fmt: skip
    print(f"first uses of valid tokens from {PROBER}, one every {args.every} s after "
          f"{args.warmup} s: {ok} of {len(results)} succeeded; statuses "
          f"{dict(sorted(statuses.items()))}; p50 {p50 * 1000:.0f} ms, "
          f"p99 {p99 * 1000:.0f} ms, slowest {max(latencies) * 1000:.0f} ms")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "shape": args.shape, "flood_rps": answered / elapsed,
            "flood_statuses": counts, "first_use_statuses": statuses,
            "p50_s": p50, "p99_s": p99, "latencies_s": latencies,
        }, indent=2))  # fmt: skip
    held = ok == len(results) and p99 < args.bar
    if not held:
        print(f"FAILED: every first use must succeed, with p99 under {args.bar} s")
        print(f"(the proxy's log is kept in {tmp})")
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
