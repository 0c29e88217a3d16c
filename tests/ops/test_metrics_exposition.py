"""The scrape's text, pinned: names, labels, buckets, HELP and TYPE lines, one worker and two.

The same observations are recorded every time (durations that are exact binary
fractions, so that sums do not depend on the order of additions); one process
must answer with exactly ``SINGLE``, two worker processes sharing a
``PROMETHEUS_MULTIPROC_DIR`` with ``MULTIPROCESS`` (families and their
samples in any order: the workers' files are read in the order the directory
lists them).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from apitokenproxy.ops.metrics import (
    ARGON2_BUCKETS,
    MULTIPROCESS_ENV,
    LocalHistogram,
    Metrics,
    Sources,
)

ROOT = Path(__file__).parents[2]


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
    assert m.exposition()[0].decode() == SINGLE


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
    assert canonical(out) == canonical(MULTIPROCESS)


# fmt: off
SINGLE = """\
# HELP apitokenproxy_requests_total Requests answered, by lane, method and status class
# TYPE apitokenproxy_requests_total counter
apitokenproxy_requests_total{lane="fast",method="GET",status="2xx"} 2.0
apitokenproxy_requests_total{lane="aiohttp",method="other",status="2xx"} 1.0
apitokenproxy_requests_total{lane="fast",method="POST",status="4xx"} 1.0
apitokenproxy_requests_total{lane="fast",method="GET",status="4xx"} 1.0
apitokenproxy_requests_total{lane="aiohttp",method="GET",status="5xx"} 1.0
# HELP apitokenproxy_request_duration_seconds Time from a request's first byte to the end of its answer
# TYPE apitokenproxy_request_duration_seconds histogram
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="0.001"} 1.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="0.0025"} 2.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="0.005"} 2.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="0.01"} 3.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="0.025"} 3.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="0.05"} 3.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="0.1"} 3.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="0.25"} 3.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="0.5"} 4.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="1.0"} 4.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="2.5"} 4.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="5.0"} 4.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="10.0"} 4.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="30.0"} 4.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="60.0"} 4.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="+Inf"} 4.0
apitokenproxy_request_duration_seconds_count{lane="fast"} 4.0
apitokenproxy_request_duration_seconds_sum{lane="fast"} 0.5107421875
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="0.001"} 0.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="0.0025"} 0.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="0.005"} 0.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="0.01"} 0.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="0.025"} 0.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="0.05"} 0.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="0.1"} 0.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="0.25"} 0.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="0.5"} 0.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="1.0"} 1.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="2.5"} 1.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="5.0"} 1.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="10.0"} 1.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="30.0"} 1.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="60.0"} 1.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="+Inf"} 2.0
apitokenproxy_request_duration_seconds_count{lane="aiohttp"} 2.0
apitokenproxy_request_duration_seconds_sum{lane="aiohttp"} 101.0
# HELP apitokenproxy_upstream_duration_seconds Time from sending a request upstream to the start of its answer
# TYPE apitokenproxy_upstream_duration_seconds histogram
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="0.001"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="0.0025"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="0.005"} 1.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="0.01"} 1.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="0.025"} 1.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="0.05"} 1.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="0.1"} 1.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="0.25"} 2.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="0.5"} 2.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="1.0"} 2.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="2.5"} 2.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="5.0"} 2.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="10.0"} 2.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="30.0"} 2.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="60.0"} 2.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="+Inf"} 2.0
apitokenproxy_upstream_duration_seconds_count{lane="fast"} 2.0
apitokenproxy_upstream_duration_seconds_sum{lane="fast"} 0.25390625
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="0.001"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="0.0025"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="0.005"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="0.01"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="0.025"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="0.05"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="0.1"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="0.25"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="0.5"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="1.0"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="2.5"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="5.0"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="10.0"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="30.0"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="60.0"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="+Inf"} 0.0
apitokenproxy_upstream_duration_seconds_count{lane="aiohttp"} 0.0
apitokenproxy_upstream_duration_seconds_sum{lane="aiohttp"} 0.0
# HELP apitokenproxy_auth_total Authentication outcomes (token, password, session, anonymous, other, refused) and, for refusals, the reason
# TYPE apitokenproxy_auth_total counter
apitokenproxy_auth_total{outcome="token",reason=""} 2.0
apitokenproxy_auth_total{outcome="password",reason=""} 1.0
apitokenproxy_auth_total{outcome="refused",reason="expired"} 1.0
apitokenproxy_auth_total{outcome="refused",reason="throttled"} 1.0
apitokenproxy_auth_total{outcome="refused",reason="busy"} 1.0
# HELP apitokenproxy_throttled_total Requests answered 429 by failure throttling
# TYPE apitokenproxy_throttled_total counter
apitokenproxy_throttled_total 1.0
# HELP apitokenproxy_busy_total Requests answered 503 because argon2 was too busy
# TYPE apitokenproxy_busy_total counter
apitokenproxy_busy_total 1.0
# HELP apitokenproxy_token_cache_hits_total Tokens found in the verified cache
# TYPE apitokenproxy_token_cache_hits_total counter
apitokenproxy_token_cache_hits_total 5.0
# HELP apitokenproxy_token_cache_misses_total Tokens not in the verified cache (checked against the store)
# TYPE apitokenproxy_token_cache_misses_total counter
apitokenproxy_token_cache_misses_total 2.0
# HELP apitokenproxy_token_cache_entries Tokens in the verified caches
# TYPE apitokenproxy_token_cache_entries gauge
apitokenproxy_token_cache_entries 3.0
# HELP apitokenproxy_argon2_verifications_total argon2 verifications done
# TYPE apitokenproxy_argon2_verifications_total counter
apitokenproxy_argon2_verifications_total 2.0
# HELP apitokenproxy_argon2_queue argon2 verifications running or waiting
# TYPE apitokenproxy_argon2_queue gauge
apitokenproxy_argon2_queue 1.0
# HELP apitokenproxy_argon2_seconds Time of one argon2 verification, its wait for a thread included
# TYPE apitokenproxy_argon2_seconds histogram
apitokenproxy_argon2_seconds_bucket{le="0.01"} 0.0
apitokenproxy_argon2_seconds_bucket{le="0.025"} 0.0
apitokenproxy_argon2_seconds_bucket{le="0.05"} 1.0
apitokenproxy_argon2_seconds_bucket{le="0.1"} 1.0
apitokenproxy_argon2_seconds_bucket{le="0.25"} 1.0
apitokenproxy_argon2_seconds_bucket{le="0.5"} 2.0
apitokenproxy_argon2_seconds_bucket{le="1.0"} 2.0
apitokenproxy_argon2_seconds_bucket{le="2.5"} 2.0
apitokenproxy_argon2_seconds_bucket{le="5.0"} 2.0
apitokenproxy_argon2_seconds_bucket{le="+Inf"} 2.0
apitokenproxy_argon2_seconds_count 2.0
apitokenproxy_argon2_seconds_sum 0.53125
# HELP apitokenproxy_store_query_seconds Time of a token-store operation
# TYPE apitokenproxy_store_query_seconds histogram
apitokenproxy_store_query_seconds_bucket{le="0.0005",operation="get"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.001",operation="get"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.0025",operation="get"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.005",operation="get"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.01",operation="get"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.025",operation="get"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.05",operation="get"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.1",operation="get"} 1.0
apitokenproxy_store_query_seconds_bucket{le="0.25",operation="get"} 1.0
apitokenproxy_store_query_seconds_bucket{le="0.5",operation="get"} 1.0
apitokenproxy_store_query_seconds_bucket{le="1.0",operation="get"} 1.0
apitokenproxy_store_query_seconds_bucket{le="5.0",operation="get"} 2.0
apitokenproxy_store_query_seconds_bucket{le="+Inf",operation="get"} 2.0
apitokenproxy_store_query_seconds_count{operation="get"} 2.0
apitokenproxy_store_query_seconds_sum{operation="get"} 2.0625
apitokenproxy_store_query_seconds_bucket{le="0.0005",operation="create"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.001",operation="create"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.0025",operation="create"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.005",operation="create"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.01",operation="create"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.025",operation="create"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.05",operation="create"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.1",operation="create"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.25",operation="create"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.5",operation="create"} 1.0
apitokenproxy_store_query_seconds_bucket{le="1.0",operation="create"} 1.0
apitokenproxy_store_query_seconds_bucket{le="5.0",operation="create"} 1.0
apitokenproxy_store_query_seconds_bucket{le="+Inf",operation="create"} 1.0
apitokenproxy_store_query_seconds_count{operation="create"} 1.0
apitokenproxy_store_query_seconds_sum{operation="create"} 0.5
# HELP apitokenproxy_store_errors_total Token-store operations that failed
# TYPE apitokenproxy_store_errors_total counter
apitokenproxy_store_errors_total{operation="get"} 1.0
# HELP apitokenproxy_store_up 1 if the last token-store operation of every worker succeeded
# TYPE apitokenproxy_store_up gauge
apitokenproxy_store_up 0.0
# HELP apitokenproxy_upstream_connections_in_use Upstream connections serving a request
# TYPE apitokenproxy_upstream_connections_in_use gauge
apitokenproxy_upstream_connections_in_use 4.0
# HELP apitokenproxy_upstream_errors_total Upstream failures by kind (refused, reset, timeout, invalid, pool_exhausted)
# TYPE apitokenproxy_upstream_errors_total counter
apitokenproxy_upstream_errors_total{kind="refused"} 0.0
apitokenproxy_upstream_errors_total{kind="reset"} 2.0
apitokenproxy_upstream_errors_total{kind="timeout"} 0.0
apitokenproxy_upstream_errors_total{kind="invalid"} 0.0
apitokenproxy_upstream_errors_total{kind="pool_exhausted"} 0.0
# HELP apitokenproxy_last_accessed_flush_age_seconds Seconds since lastAccessed times were last written to the store
# TYPE apitokenproxy_last_accessed_flush_age_seconds gauge
apitokenproxy_last_accessed_flush_age_seconds 0.5
# HELP apitokenproxy_revocation_listener_up 1 if every worker's PostgreSQL revocation listener is connected
# TYPE apitokenproxy_revocation_listener_up gauge
apitokenproxy_revocation_listener_up 1.0
# HELP apitokenproxy_expiry_warnings_total Expiry warnings by channel (email, webhook) and outcome (sent, failed, gave_up)
# TYPE apitokenproxy_expiry_warnings_total counter
apitokenproxy_expiry_warnings_total{channel="email",outcome="sent"} 2.0
apitokenproxy_expiry_warnings_total{channel="webhook",outcome="gave_up"} 1.0
# HELP apitokenproxy_tokens_created_total Tokens created
# TYPE apitokenproxy_tokens_created_total counter
apitokenproxy_tokens_created_total 1.0
# HELP apitokenproxy_tokens_revoked_total Tokens revoked
# TYPE apitokenproxy_tokens_revoked_total counter
apitokenproxy_tokens_revoked_total 0.0
"""

# Families in name order, samples sorted (see canonical).
MULTIPROCESS = """\
# HELP apitokenproxy_argon2_queue argon2 verifications running or waiting
# TYPE apitokenproxy_argon2_queue gauge
apitokenproxy_argon2_queue 2.0
# HELP apitokenproxy_argon2_seconds Time of one argon2 verification, its wait for a thread included
# TYPE apitokenproxy_argon2_seconds histogram
apitokenproxy_argon2_seconds_bucket{le="+Inf"} 4.0
apitokenproxy_argon2_seconds_bucket{le="0.01"} 0.0
apitokenproxy_argon2_seconds_bucket{le="0.025"} 0.0
apitokenproxy_argon2_seconds_bucket{le="0.05"} 2.0
apitokenproxy_argon2_seconds_bucket{le="0.1"} 2.0
apitokenproxy_argon2_seconds_bucket{le="0.25"} 2.0
apitokenproxy_argon2_seconds_bucket{le="0.5"} 4.0
apitokenproxy_argon2_seconds_bucket{le="1.0"} 4.0
apitokenproxy_argon2_seconds_bucket{le="2.5"} 4.0
apitokenproxy_argon2_seconds_bucket{le="5.0"} 4.0
apitokenproxy_argon2_seconds_count 4.0
apitokenproxy_argon2_seconds_sum 1.0625
# HELP apitokenproxy_argon2_verifications_total argon2 verifications done
# TYPE apitokenproxy_argon2_verifications_total counter
apitokenproxy_argon2_verifications_total 4.0
# HELP apitokenproxy_auth_total Authentication outcomes (token, password, session, anonymous, other, refused) and, for refusals, the reason
# TYPE apitokenproxy_auth_total counter
apitokenproxy_auth_total{outcome="password",reason=""} 2.0
apitokenproxy_auth_total{outcome="refused",reason="busy"} 2.0
apitokenproxy_auth_total{outcome="refused",reason="expired"} 2.0
apitokenproxy_auth_total{outcome="refused",reason="throttled"} 2.0
apitokenproxy_auth_total{outcome="token",reason=""} 4.0
# HELP apitokenproxy_busy_total Requests answered 503 because argon2 was too busy
# TYPE apitokenproxy_busy_total counter
apitokenproxy_busy_total 2.0
# HELP apitokenproxy_expiry_warnings_total Expiry warnings by channel (email, webhook) and outcome (sent, failed, gave_up)
# TYPE apitokenproxy_expiry_warnings_total counter
apitokenproxy_expiry_warnings_total{channel="email",outcome="sent"} 4.0
apitokenproxy_expiry_warnings_total{channel="webhook",outcome="gave_up"} 2.0
# HELP apitokenproxy_last_accessed_flush_age_seconds Seconds since lastAccessed times were last written to the store
# TYPE apitokenproxy_last_accessed_flush_age_seconds gauge
apitokenproxy_last_accessed_flush_age_seconds 0.5
# HELP apitokenproxy_request_duration_seconds Time from a request's first byte to the end of its answer
# TYPE apitokenproxy_request_duration_seconds histogram
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="+Inf"} 4.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="0.001"} 0.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="0.0025"} 0.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="0.005"} 0.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="0.01"} 0.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="0.025"} 0.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="0.05"} 0.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="0.1"} 0.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="0.25"} 0.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="0.5"} 0.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="1.0"} 2.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="10.0"} 2.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="2.5"} 2.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="30.0"} 2.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="5.0"} 2.0
apitokenproxy_request_duration_seconds_bucket{lane="aiohttp",le="60.0"} 2.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="+Inf"} 8.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="0.001"} 2.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="0.0025"} 4.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="0.005"} 4.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="0.01"} 6.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="0.025"} 6.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="0.05"} 6.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="0.1"} 6.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="0.25"} 6.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="0.5"} 8.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="1.0"} 8.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="10.0"} 8.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="2.5"} 8.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="30.0"} 8.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="5.0"} 8.0
apitokenproxy_request_duration_seconds_bucket{lane="fast",le="60.0"} 8.0
apitokenproxy_request_duration_seconds_count{lane="aiohttp"} 4.0
apitokenproxy_request_duration_seconds_count{lane="fast"} 8.0
apitokenproxy_request_duration_seconds_sum{lane="aiohttp"} 202.0
apitokenproxy_request_duration_seconds_sum{lane="fast"} 1.021484375
# HELP apitokenproxy_requests_total Requests answered, by lane, method and status class
# TYPE apitokenproxy_requests_total counter
apitokenproxy_requests_total{lane="aiohttp",method="GET",status="5xx"} 2.0
apitokenproxy_requests_total{lane="aiohttp",method="other",status="2xx"} 2.0
apitokenproxy_requests_total{lane="fast",method="GET",status="2xx"} 4.0
apitokenproxy_requests_total{lane="fast",method="GET",status="4xx"} 2.0
apitokenproxy_requests_total{lane="fast",method="POST",status="4xx"} 2.0
# HELP apitokenproxy_revocation_listener_up 1 if every worker's PostgreSQL revocation listener is connected
# TYPE apitokenproxy_revocation_listener_up gauge
apitokenproxy_revocation_listener_up 1.0
# HELP apitokenproxy_store_errors_total Token-store operations that failed
# TYPE apitokenproxy_store_errors_total counter
apitokenproxy_store_errors_total{operation="get"} 2.0
# HELP apitokenproxy_store_query_seconds Time of a token-store operation
# TYPE apitokenproxy_store_query_seconds histogram
apitokenproxy_store_query_seconds_bucket{le="+Inf",operation="create"} 2.0
apitokenproxy_store_query_seconds_bucket{le="+Inf",operation="get"} 4.0
apitokenproxy_store_query_seconds_bucket{le="0.0005",operation="create"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.0005",operation="get"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.001",operation="create"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.001",operation="get"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.0025",operation="create"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.0025",operation="get"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.005",operation="create"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.005",operation="get"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.01",operation="create"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.01",operation="get"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.025",operation="create"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.025",operation="get"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.05",operation="create"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.05",operation="get"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.1",operation="create"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.1",operation="get"} 2.0
apitokenproxy_store_query_seconds_bucket{le="0.25",operation="create"} 0.0
apitokenproxy_store_query_seconds_bucket{le="0.25",operation="get"} 2.0
apitokenproxy_store_query_seconds_bucket{le="0.5",operation="create"} 2.0
apitokenproxy_store_query_seconds_bucket{le="0.5",operation="get"} 2.0
apitokenproxy_store_query_seconds_bucket{le="1.0",operation="create"} 2.0
apitokenproxy_store_query_seconds_bucket{le="1.0",operation="get"} 2.0
apitokenproxy_store_query_seconds_bucket{le="5.0",operation="create"} 2.0
apitokenproxy_store_query_seconds_bucket{le="5.0",operation="get"} 4.0
apitokenproxy_store_query_seconds_count{operation="create"} 2.0
apitokenproxy_store_query_seconds_count{operation="get"} 4.0
apitokenproxy_store_query_seconds_sum{operation="create"} 1.0
apitokenproxy_store_query_seconds_sum{operation="get"} 4.125
# HELP apitokenproxy_store_up 1 if the last token-store operation of every worker succeeded
# TYPE apitokenproxy_store_up gauge
apitokenproxy_store_up 0.0
# HELP apitokenproxy_throttled_total Requests answered 429 by failure throttling
# TYPE apitokenproxy_throttled_total counter
apitokenproxy_throttled_total 2.0
# HELP apitokenproxy_token_cache_entries Tokens in the verified caches
# TYPE apitokenproxy_token_cache_entries gauge
apitokenproxy_token_cache_entries 6.0
# HELP apitokenproxy_token_cache_hits_total Tokens found in the verified cache
# TYPE apitokenproxy_token_cache_hits_total counter
apitokenproxy_token_cache_hits_total 10.0
# HELP apitokenproxy_token_cache_misses_total Tokens not in the verified cache (checked against the store)
# TYPE apitokenproxy_token_cache_misses_total counter
apitokenproxy_token_cache_misses_total 4.0
# HELP apitokenproxy_tokens_created_total Tokens created
# TYPE apitokenproxy_tokens_created_total counter
apitokenproxy_tokens_created_total 2.0
# HELP apitokenproxy_tokens_revoked_total Tokens revoked
# TYPE apitokenproxy_tokens_revoked_total counter
apitokenproxy_tokens_revoked_total 0.0
# HELP apitokenproxy_upstream_connections_in_use Upstream connections serving a request
# TYPE apitokenproxy_upstream_connections_in_use gauge
apitokenproxy_upstream_connections_in_use 8.0
# HELP apitokenproxy_upstream_duration_seconds Time from sending a request upstream to the start of its answer
# TYPE apitokenproxy_upstream_duration_seconds histogram
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="+Inf"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="0.001"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="0.0025"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="0.005"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="0.01"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="0.025"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="0.05"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="0.1"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="0.25"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="0.5"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="1.0"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="10.0"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="2.5"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="30.0"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="5.0"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="aiohttp",le="60.0"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="+Inf"} 4.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="0.001"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="0.0025"} 0.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="0.005"} 2.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="0.01"} 2.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="0.025"} 2.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="0.05"} 2.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="0.1"} 2.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="0.25"} 4.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="0.5"} 4.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="1.0"} 4.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="10.0"} 4.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="2.5"} 4.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="30.0"} 4.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="5.0"} 4.0
apitokenproxy_upstream_duration_seconds_bucket{lane="fast",le="60.0"} 4.0
apitokenproxy_upstream_duration_seconds_count{lane="aiohttp"} 0.0
apitokenproxy_upstream_duration_seconds_count{lane="fast"} 4.0
apitokenproxy_upstream_duration_seconds_sum{lane="aiohttp"} 0.0
apitokenproxy_upstream_duration_seconds_sum{lane="fast"} 0.5078125
# HELP apitokenproxy_upstream_errors_total Upstream failures by kind (refused, reset, timeout, invalid, pool_exhausted)
# TYPE apitokenproxy_upstream_errors_total counter
apitokenproxy_upstream_errors_total{kind="invalid"} 0.0
apitokenproxy_upstream_errors_total{kind="pool_exhausted"} 0.0
apitokenproxy_upstream_errors_total{kind="refused"} 0.0
apitokenproxy_upstream_errors_total{kind="reset"} 4.0
apitokenproxy_upstream_errors_total{kind="timeout"} 0.0
"""
# fmt: on
