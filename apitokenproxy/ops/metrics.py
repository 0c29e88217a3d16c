"""Prometheus metrics: counted as plain numbers where requests run, published once a second.

``prometheus_client`` costs 1.5 to 2.5 µs per counter or histogram update in
its multiprocess mode (a lock and a write to a memory-mapped file), several
per request: too much for the data path. So the data path adds to plain
dicts and lists here (``request``: well under a microsecond), and ``flush``,
once a second and before each scrape, adds what accumulated to the
``prometheus_client`` counters and to the histograms (``histograms``: kept
by this package, published through prometheus_client's collector API).
Gauges and the counters other components keep (the verified-token cache,
argon2, the upstream pool) are read at the same moment, through the
``sources`` given at construction.

With several worker processes the supervisor gives them one directory
(``PROMETHEUS_MULTIPROC_DIR``, made per run and removed at exit), where each
worker's counters, gauges and histograms are written; a scrape answered by
any worker then sums every worker's files. With one process the metrics live
in memory. Metric names and what they mean: docs/observability.md.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from ..periodic import Periodic
from .histograms import HistogramMetric, LocalHistogram, WorkerFile, WorkersSum

# No *_created series: the multiprocess mode has none, so one worker and
# several export the same names.
disable_created_metrics()  # type: ignore[no-untyped-call]

FLUSH_SECONDS = 1.0
# The classic text format, which every Prometheus version reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "apitokenproxy_"

REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0, float("inf"))  # fmt: skip
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
                 float("inf"))  # fmt: skip
ARGON2_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, float("inf"))

# The kinds of ``UpstreamUnavailable``, ``UpstreamTimeout``, ``UpstreamBusy`` and
# ``TooManyInFlight`` (errors.py), each counted from 0 so that rate() sees its first.
UPSTREAM_ERROR_KINDS = ("refused", "reset", "timeout", "invalid", "pool_exhausted", "client_limit")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_STATUS_CLASS = tuple(f"{n}xx" for n in range(10))


@dataclass
class Sources:
    """Where the numbers other components keep are read at each flush (all optional)."""

    cache_hits: Callable[[], int] | None = None
    cache_misses: Callable[[], int] | None = None
    cache_entries: Callable[[], int] | None = None
    argon2: Callable[[], tuple[int, int, LocalHistogram]] | None = None  # done, queued, seconds
    upstream_in_use: Callable[[], int] | None = None
    upstream_failures: Callable[[], dict[str, int]] | None = None
    flush_age: Callable[[], float] | None = None
    listener_up: Callable[[], bool] | None = None  # PostgreSQL only
    # Expiry warnings by "channel.outcome" (email.sent, webhook.failed, email.gave_up...).
    expiry_warnings: Callable[[], Mapping[str, int]] | None = None


class Metrics:
    def __init__(self, sources: Sources | None = None) -> None:
        self.sources = sources or Sources()
        # Where every worker's metrics are written, with several workers.
        self.directory = os.environ.get(MULTIPROCESS_ENV) or None
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._histograms: list[HistogramMetric] = []

        def histogram(
            name: str, documentation: str, labelnames: list[str], bounds: tuple[float, ...]
        ) -> HistogramMetric:
            metric = HistogramMetric(name, documentation, labelnames, bounds)
            r.register(metric)
            self._histograms.append(metric)
            return metric

        self._requests = Counter(
            PREFIX + "requests_total",
            "Requests answered, by lane, method and status class",
            ["lane", "method", "status"],
            registry=r,
        )
        self._duration = histogram(
            PREFIX + "request_duration_seconds",
            "Time from a request's first byte to the end of its answer",
            ["lane"],
            REQUEST_BUCKETS,
        )
        self._upstream = histogram(
            PREFIX + "upstream_duration_seconds",
            "Time from sending a request upstream to the start of its answer",
            ["lane"],
            REQUEST_BUCKETS,
        )
        self._auth = Counter(
            PREFIX + "auth_total",
            "Authentication outcomes (token, password, session, anonymous, other, refused) "
            "and, for refusals, the reason",
            ["outcome", "reason"],
            registry=r,
        )
        self._throttled = Counter(
            PREFIX + "throttled_total", "Requests answered 429 by failure throttling", registry=r
        )
        self._busy = Counter(
            PREFIX + "busy_total", "Requests answered 503 because argon2 was too busy", registry=r
        )
        self._cache_hits = Counter(
            PREFIX + "token_cache_hits_total", "Tokens found in the verified cache", registry=r
        )
        self._cache_misses = Counter(
            PREFIX + "token_cache_misses_total",
            "Tokens not in the verified cache (checked against the store)",
            registry=r,
        )
        self._cache_entries = Gauge(
            PREFIX + "token_cache_entries",
            "Tokens in the verified caches",
            registry=r,
            multiprocess_mode="livesum",
        )
        self._argon2 = Counter(
            PREFIX + "argon2_verifications_total", "argon2 verifications done", registry=r
        )
        self._argon2_queue = Gauge(
            PREFIX + "argon2_queue",
            "argon2 verifications running or waiting",
            registry=r,
            multiprocess_mode="livesum",
        )
        self._argon2_seconds = histogram(
            PREFIX + "argon2_seconds",
            "Time of one argon2 verification, its wait for a thread included",
            [],
            ARGON2_BUCKETS,
        )
        self._store_seconds = histogram(
            PREFIX + "store_query_seconds",
            "Time of a token-store operation",
            ["operation"],
            STORE_BUCKETS,
        )
        self._store_errors = Counter(
            PREFIX + "store_errors_total",
            "Token-store operations that failed",
            ["operation"],
            registry=r,
        )
        self._store_up = Gauge(
            PREFIX + "store_up",
            "1 if the last token-store operation of every worker succeeded",
            registry=r,
            multiprocess_mode="livemin",
        )
        self._in_use = Gauge(
            PREFIX + "upstream_connections_in_use",
            "Upstream connections serving a request",
            registry=r,
            multiprocess_mode="livesum",
        )
        self._upstream_errors = Counter(
            PREFIX + "upstream_errors_total",
            f"Upstream failures by kind ({', '.join(UPSTREAM_ERROR_KINDS)})",
            ["kind"],
            registry=r,
        )
        self._flush_age = Gauge(
            PREFIX + "last_accessed_flush_age_seconds",
            "Seconds since lastAccessed times were last written to the store",
            registry=r,
            multiprocess_mode="livemax",
        )
        self._listener_up: Gauge | None = None
        if self.sources.listener_up is not None:
            self._listener_up = Gauge(
                PREFIX + "revocation_listener_up",
                "1 if every worker's PostgreSQL revocation listener is connected",
                registry=r,
                multiprocess_mode="livemin",
            )
        self._warnings = Counter(
            PREFIX + "expiry_warnings_total",
            "Expiry warnings by channel (email, webhook) and outcome (sent, failed, gave_up)",
            ["channel", "outcome"],
            registry=r,
        )
        self._created = Counter(PREFIX + "tokens_created_total", "Tokens created", registry=r)
        self._revoked = Counter(PREFIX + "tokens_revoked_total", "Tokens revoked", registry=r)
        self._store_up.set(1)
        for kind in UPSTREAM_ERROR_KINDS:
            self._upstream_errors.labels(kind)
        # What accumulated since the last flush.
        self._counts: dict[tuple[str, str, str], int] = {}
        self._outcomes: dict[tuple[str, str], int] = {}
        self._durations = {lane: LocalHistogram(REQUEST_BUCKETS) for lane in ("fast", "aiohttp")}
        self._upstream_durations = {
            lane: LocalHistogram(REQUEST_BUCKETS) for lane in ("fast", "aiohttp")
        }
        self._store: dict[str, LocalHistogram] = {}
        self._seen: dict[str, int] = {}  # last totals read from the sources
        self._worker_file: WorkerFile | None = None
        if self.directory is not None:
            self._worker_file = WorkerFile(self.directory, os.getpid(), self._histograms)
        self._periodic = Periodic(self._flushed, FLUSH_SECONDS, name="metrics flusher", final=True)

    # -- the data path ------------------------------------------------------

    def request(
        self,
        lane: str,
        method: str,
        status: int,
        seconds: float,
        upstream_seconds: float | None,
        auth: str | None,
        reason: str | None,
    ) -> None:
        # Sorted at once into plain counters and histograms: a few dict and list
        # updates; prometheus_client's objects get the sums at the flush.
        key = (lane, method if method in METHODS else "other", _STATUS_CLASS[status // 100])
        counts = self._counts
        counts[key] = counts.get(key, 0) + 1
        self._durations[lane].observe(seconds)
        if upstream_seconds is not None:
            self._upstream_durations[lane].observe(upstream_seconds)
        if auth is not None:
            outcome = (auth, reason or "")
            outcomes = self._outcomes
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

    def store_call(self, operation: str, seconds: float, failed: bool, result: Any) -> None:
        histogram = self._store.get(operation)
        if histogram is None:
            histogram = self._store[operation] = LocalHistogram(STORE_BUCKETS)
        histogram.observe(seconds)
        if failed:
            self._store_errors.labels(operation).inc()
        self._store_up.set(0 if failed else 1)
        if failed:
            return
        if operation == "create":
            self._created.inc()
        elif operation == "delete" and result:
            self._revoked.inc()
        elif operation == "delete_all_for":
            self._revoked.inc(len(result))

    # -- publishing ---------------------------------------------------------

    def flush(self) -> None:
        """Move what accumulated into the published metrics, and read the sources."""
        counts, self._counts = self._counts, {}
        for key, n in counts.items():
            self._requests.labels(*key).inc(n)
        outcomes, self._outcomes = self._outcomes, {}
        for (outcome, reason), n in outcomes.items():
            self._auth.labels(outcome, reason).inc(n)
            if reason == "throttled":
                self._throttled.inc(n)
            elif reason == "busy":
                self._busy.inc(n)
        for lane, histogram in self._durations.items():
            histogram.move_into(self._duration.labels(lane))
        for lane, histogram in self._upstream_durations.items():
            histogram.move_into(self._upstream.labels(lane))
        for operation, histogram in self._store.items():
            histogram.move_into(self._store_seconds.labels(operation))
        self._read_sources()
        if self._worker_file is not None:
            self._worker_file.save()

    def _advance(self, name: str, counter: Counter, total: int) -> None:
        delta = total - self._seen.get(name, 0)
        if delta > 0:
            counter.inc(delta)
        self._seen[name] = total

    def _read_sources(self) -> None:
        s = self.sources
        if s.cache_hits is not None:
            self._advance("hits", self._cache_hits, s.cache_hits())
        if s.cache_misses is not None:
            self._advance("misses", self._cache_misses, s.cache_misses())
        if s.cache_entries is not None:
            self._cache_entries.set(s.cache_entries())
        if s.argon2 is not None:
            done, queued, seconds = s.argon2()
            self._advance("argon2", self._argon2, done)
            self._argon2_queue.set(queued)
            seconds.move_into(self._argon2_seconds.labels())
        if s.upstream_in_use is not None:
            self._in_use.set(s.upstream_in_use())
        if s.upstream_failures is not None:
            for kind, total in s.upstream_failures().items():
                self._advance("upstream:" + kind, self._upstream_errors.labels(kind), total)
        if s.flush_age is not None:
            self._flush_age.set(s.flush_age())
        if s.listener_up is not None and self._listener_up is not None:
            self._listener_up.set(1 if s.listener_up() else 0)
        if s.expiry_warnings is not None:
            for name, total in s.expiry_warnings().items():
                channel, _, outcome = name.partition(".")
                self._advance("warnings:" + name, self._warnings.labels(channel, outcome), total)

    def exposition(self) -> tuple[bytes, str]:
        """The text a scrape gets (every worker's sum), and its content type."""
        self.flush()
        if self.directory is not None:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, self.directory)  # type: ignore[no-untyped-call]
            registry.register(WorkersSum(self.directory, self._histograms))
            return generate_latest(registry), CONTENT_TYPE
        return generate_latest(self.registry), CONTENT_TYPE

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def _flushed(self) -> None:
        self.flush()


class MeasuredStore:
    """A token store whose operations are timed and counted (``Metrics.store_call``).

    Every coroutine method passes through, timed; ``watch`` (it runs for the
    life of the process) and ``close`` are not measured.
    """

    _UNMEASURED = frozenset({"watch", "close"})

    def __init__(self, store: Any, metrics: Metrics) -> None:
        self._store = store
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if name in self._UNMEASURED or not asyncio.iscoroutinefunction(attr):
            return attr
        metrics = self._metrics

        async def measured(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                result = await attr(*args, **kwargs)
            except Exception:
                metrics.store_call(name, time.perf_counter() - started, True, None)
                raise
            metrics.store_call(name, time.perf_counter() - started, False, result)
            return result

        return measured
