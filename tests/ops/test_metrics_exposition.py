"""The scrape's text, pinned: names, labels, buckets, HELP and TYPE lines, one worker and two.

The same observations are recorded every time (durations that are exact binary
fractions, so that sums do not depend on the order of additions); one process
must answer with exactly ``ONE_PROCESS``, two worker processes sharing a
``PROMETHEUS_MULTIPROC_DIR`` with ``TWO_WORKERS`` (families and their
samples in any order: the workers' files are read in the order the directory
lists them).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from apitokenproxy.ops.histograms import LocalHistogram
from apitokenproxy.ops.metrics import ARGON2_BUCKETS, MULTIPROCESS_ENV, Metrics, Sources

ROOT = Path(__file__).parents[2]
# Made by prometheus_client's own Histogram and MultiProcessCollector, before the
# histograms were this package's (the two workers' file: families in name order,
# samples sorted, as ``canonical`` puts them).
ONE_PROCESS = Path(__file__).with_name("metrics_one_process.txt")
TWO_WORKERS = Path(__file__).with_name("metrics_two_workers.txt")


def sources() -> Sources:
    argon2 = LocalHistogram(ARGON2_BUCKETS)
    argon2.observe(0.03125)
    argon2.observe(0.5)
    return Sources(
        cache_hits=lambda: 5,
        cache_misses=lambda: 2,
        cache_entries=lambda: 3,
        argon2=lambda: (2, 1, argon2),
        upstream_in_use=lambda: 4,
        upstream_failures=lambda: {"reset": 2},
        flush_age=lambda: 0.5,
        listener_up=lambda: True,
        expiry_warnings=lambda: {"email.sent": 2, "webhook.gave_up": 1},
    )


def record(m: Metrics) -> None:
    """One worker's share: two flushes, with requests and store calls before each."""
    m.request("fast", "GET", 200, 0.0078125, 0.00390625, "token", None)
    m.request("fast", "GET", 200, 0.5, 0.25, "token", None)  # on a bound: counted in it
    m.request("aiohttp", "PROPFIND", 207, 100.0, None, "password", None)  # past the last
    m.store_call("get", 0.0625, False, None)
    m.flush()
    m.request("fast", "POST", 401, 0.001953125, None, "refused", "expired")
    m.request("fast", "GET", 429, 0.0009765625, None, "refused", "throttled")
    m.request("aiohttp", "GET", 503, 1.0, None, "refused", "busy")
    m.store_call("create", 0.5, False, None)
    m.store_call("get", 2.0, True, None)
    m.flush()


def worker(scrape: bool) -> None:
    """A worker process of the multiprocess test (run by ``python -c``)."""
    m = Metrics(sources())
    record(m)
    if scrape:
        sys.stdout.write(m.exposition()[0].decode())


def canonical(text: str) -> list[list[str]]:
    """The families in name order, each its HELP and TYPE lines then its samples sorted."""
    families: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("# HELP "):
            families.append([line])
        else:
            families[-1].append(line)
    return sorted([*family[:2], *sorted(family[2:])] for family in families)


def test_one_process_answers_the_pinned_text() -> None:
    m = Metrics(sources())
    record(m)
    assert m.exposition()[0].decode() == ONE_PROCESS.read_text()


@pytest.mark.slow  # real processes
def test_two_workers_answer_the_pinned_sums(tmp_path: Path) -> None:
    env = {**os.environ, MULTIPROCESS_ENV: str(tmp_path)}
    out = ""
    for scrape in (False, True):
        code = f"from tests.ops.test_metrics_exposition import worker; worker({scrape})"
        done = subprocess.run(  # noqa: S603 - this Python, running our own function
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        out = done.stdout
    assert canonical(out) == canonical(TWO_WORKERS.read_text())
