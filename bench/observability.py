#!/usr/bin/env python3
"""What the access log and the metrics cost per request, measured alone (microseconds).

    python bench/observability.py [--number 200000]

Times, in one process and without a network: formatting and batching one
access-log line (text and json; written to /dev/null in batches as the proxy
does), the data path's per-request metrics call (``Metrics.request``), a
flush of a second's worth of requests into prometheus_client, and, for
comparison, prometheus_client's own per-request cost in multiprocess mode
(what the local counting avoids). The whole data path is measured by
bench/run.py; this isolates the part issue 11 added.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import timeit
from typing import TextIO


async def measure(number: int, sink: TextIO) -> dict[str, float]:
    from apitokenproxy.live import Live, Settings
    from apitokenproxy.ops.accesslog import AccessLog
    from apitokenproxy.ops.exchange import Exchange
    from apitokenproxy.ops.metrics import Metrics

    sample = Exchange("4bf92f3577b34da6-1f")
    sample.lane, sample.client, sample.target = "fast", "203.0.113.9", "/rest/api/2/issue/PROJ-123"
    sample.status, sample.bytes_out, sample.upstream_seconds = 200, 1234, 0.0031
    sample.authenticated("token", None, "alice", 17)

    results: dict[str, float] = {}
    for format in ("text", "json"):
        log = AccessLog(Live(Settings(log_format=format)), stream=sink)  # type: ignore[arg-type]

        def line(log: AccessLog = log) -> None:
            log.record(sample, 0.0042)

        results[f"access log line, {format}"] = timeit.timeit(line, number=number) / number
        log.flush()
    metrics = Metrics()

    def request() -> None:
        metrics.request("fast", "GET", 200, 0.0042, 0.0031, "token", None)

    results["metrics per request"] = timeit.timeit(request, number=number) / number
    flushes = []
    for _ in range(5):
        for _ in range(20_000):  # a second of one busy worker's requests
            metrics.request("fast", "GET", 200, 0.0042, 0.0031, "token", None)
        started = time.perf_counter()
        metrics.flush()
        flushes.append(time.perf_counter() - started)
    flush = statistics.median(flushes)
    results["metrics flush of 20k requests (once a second)"] = flush
    results["  the same, per request"] = flush / 20_000
    return results


def prometheus_direct(number: int) -> float:
    """prometheus_client's own cost for what Metrics.request records, multiprocess mode."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp()
    from prometheus_client import CollectorRegistry, Counter, Histogram

    registry = CollectorRegistry()
    requests = Counter("r_total", "r", ["lane", "method", "status"], registry=registry)
    auth = Counter("a_total", "a", ["outcome", "reason"], registry=registry)
    duration = Histogram("d_seconds", "d", ["lane"], registry=registry)
    upstream = Histogram("u_seconds", "u", ["lane"], registry=registry)

    def request() -> None:
        requests.labels("fast", "GET", "2xx").inc()
        auth.labels("token", "").inc()
        duration.labels("fast").observe(0.0042)
        upstream.labels("fast").observe(0.0031)

    return timeit.timeit(request, number=number) / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200_000)
    args = parser.parse_args()
    with open(os.devnull, "w") as sink:
        results = asyncio.run(measure(args.number, sink))
    for name, seconds in results.items():
        print(f"{name:52} {seconds * 1e6:8.2f} µs")
    direct = prometheus_direct(args.number)
    print(f"{'prometheus_client directly, multiprocess (avoided)':52} {direct * 1e6:8.2f} µs")


if __name__ == "__main__":
    main()
