"""Histograms: published as prometheus_client's own Histogram would publish the same
observations, and summed over workers' files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Histogram

from apitokenproxy.ops.histograms import HistogramMetric, LocalHistogram, WorkerFile, WorkersSum
from apitokenproxy.ops.metrics import REQUEST_BUCKETS, STORE_BUCKETS

Samples = list[tuple[str, dict[str, str], float]]


def samples(registry: CollectorRegistry) -> Samples:
    return [
        (s.name, s.labels, s.value)
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")  # when each was made
    ]


def published(metric: HistogramMetric) -> Samples:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(metric)
    return samples(registry)


@pytest.mark.parametrize(
    "observed", [[], [0.0], [0.001, 0.001, 0.0011], [0.07, 3.0, 61.0, 1e9], [0.5] * 10]
)
def test_a_moved_local_histogram_publishes_what_observe_would(observed: list[float]) -> None:
    direct_registry = CollectorRegistry()
    direct = Histogram("h", "help", buckets=REQUEST_BUCKETS, registry=direct_registry)
    metric = HistogramMetric("h", "help", [], REQUEST_BUCKETS)
    local = LocalHistogram(REQUEST_BUCKETS)
    for v in observed:
        direct.observe(v)
        local.observe(v)
    local.move_into(metric.labels())
    local.move_into(metric.labels())  # emptied by the first
    assert published(metric) == samples(direct_registry)


def test_labelled_series_appear_on_first_use_as_prometheus_clients_do() -> None:
    direct_registry = CollectorRegistry()
    direct = Histogram("h", "help", ["operation"], buckets=STORE_BUCKETS, registry=direct_registry)
    metric = HistogramMetric("h", "help", ["operation"], STORE_BUCKETS)
    assert published(metric) == samples(direct_registry) == []
    for operation, seconds in (("get", 0.0004), ("create", 0.5), ("get", 6.0)):
        direct.labels(operation).observe(seconds)
        metric.labels(operation).observe(seconds)
    direct.labels("delete")
    metric.labels("delete")
    assert published(metric) == samples(direct_registry)


def test_observe_times_counts_a_value_that_often() -> None:
    once, many = LocalHistogram(STORE_BUCKETS), LocalHistogram(STORE_BUCKETS)
    for _ in range(3):
        once.observe(0.25)
    many.observe(0.25, times=3)
    assert (once.counts, once.total) == (many.counts, many.total)
    assert once.cumulative()[STORE_BUCKETS.index(0.25)] == 3


def store_and_argon2() -> list[HistogramMetric]:
    return [
        HistogramMetric("store", "help", ["operation"], STORE_BUCKETS),
        HistogramMetric("argon2", "help", [], REQUEST_BUCKETS),
        HistogramMetric("unused", "help", ["lane"], REQUEST_BUCKETS),
    ]


def test_a_scrape_sums_every_workers_file(tmp_path: Path) -> None:
    def worker(pid: int, seconds: list[tuple[str, float]]) -> list[HistogramMetric]:
        metrics = store_and_argon2()
        file = WorkerFile(str(tmp_path), pid, metrics)
        for operation, s in seconds:
            metrics[0].labels(operation).observe(s)
        metrics[1].labels().observe(0.125)
        file.save()
        return metrics

    worker(101, [("get", 0.0004), ("get", 0.5)])
    worker(102, [("get", 0.125), ("create", 2.0)])
    mine = worker(103, [("get", 0.25)])
    (tmp_path / "histograms_104.json.partial").write_text("{")  # a write under way
    summed = CollectorRegistry()
    summed.register(WorkersSum(str(tmp_path), mine))

    direct_registry = CollectorRegistry()
    store = Histogram(
        "store", "help", ["operation"], buckets=STORE_BUCKETS, registry=direct_registry
    )
    argon2 = Histogram("argon2", "help", buckets=REQUEST_BUCKETS, registry=direct_registry)
    for operation, s in (("get", 0.0004), ("get", 0.5), ("get", 0.125), ("create", 2.0)):
        store.labels(operation).observe(s)
    store.labels("get").observe(0.25)
    for _ in range(3):
        argon2.observe(0.125)
    # "unused": no worker has a series of it, so it is left out.
    assert sorted(samples(summed), key=repr) == sorted(samples(direct_registry), key=repr)


def test_a_worker_saves_only_changes_and_its_successor_keeps_its_counts(tmp_path: Path) -> None:
    metrics = store_and_argon2()
    file = WorkerFile(str(tmp_path), 7, metrics)
    metrics[0].labels("get").observe(0.25)
    file.save()
    path = tmp_path / "histograms_7.json"
    path.write_text("not written again")
    file.save()  # nothing changed since
    assert path.read_text() == "not written again"
    metrics[0].labels("get").observe(0.25)
    file.save()
    [[values, counts, total]] = json.loads(path.read_text())["store"]
    assert (values, counts[STORE_BUCKETS.index(0.25)], sum(counts), total) == (["get"], 2, 2, 0.5)

    # A new worker with the same process id takes the file over (pids are reused).
    successor = store_and_argon2()
    again = WorkerFile(str(tmp_path), 7, successor)
    successor[0].labels("get").observe(1.0)
    again.save()
    assert successor[0].labels("get").counts[STORE_BUCKETS.index(0.25)] == 2
    assert successor[0].labels("get").total == 1.5
