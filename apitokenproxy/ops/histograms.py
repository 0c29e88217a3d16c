"""Histograms the proxy counts itself and publishes through prometheus_client's collector API.

prometheus_client's ``Histogram`` takes one observation per call (a lock, and
with several workers a write to a memory-mapped file) and has no public call
that adds many at once. So a histogram here is a list of counts, one per
bucket, and a sum (``LocalHistogram``): the data path observes into one, the
metrics flush moves it into the published series of a ``HistogramMetric``,
and a scrape reads those as a ``HistogramMetricFamily``, the same text
prometheus_client's own ``Histogram`` gives.

With several worker processes (``PROMETHEUS_MULTIPROC_DIR``), each worker
writes its series at every flush to its own file in that directory
(``WorkerFile``, ``histograms_<pid>.json``), and a scrape sums every worker's
file (``WorkersSum``), as prometheus_client's ``MultiProcessCollector`` does with
its ``*.db`` files: the counts of a worker that has exited stay in the totals.
"""

from __future__ import annotations

import bisect
import glob
import json
import os
from collections.abc import Iterator, Mapping, Sequence

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

# Outside MultiProcessCollector's "*.db"; a file being written (``WorkerFile.save``)
# is not matched.
WORKER_FILES = "histograms_*.json"

Series = Mapping[tuple[str, ...], "LocalHistogram"]


class LocalHistogram:
    """Observations counted per bucket (each value in the first bound it is not above), and
    their sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * len(self.bounds)
        self.total = 0.0

    def observe(self, value: float, times: int = 1) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += times
        self.total += value * times

    def add(self, counts: Sequence[int], total: float) -> None:
        for i, count in enumerate(counts):
            if count:
                self.counts[i] += count
        self.total += total

    def move_into(self, other: LocalHistogram) -> None:
        """Add what was observed to ``other``, and start over."""
        if not any(self.counts):
            return
        other.add(self.counts, self.total)
        self.counts = [0] * len(self.bounds)
        self.total = 0.0

    def cumulative(self) -> list[float]:
        """The count up to each bound, as the exposition writes the buckets."""
        running, counts = 0, []
        for count in self.counts:
            running += count
            counts.append(float(running))
        return counts


class HistogramMetric:
    """One histogram metric and its series by label values; a prometheus_client collector.

    An unlabelled one has its one series from the start; a labelled one gets each
    series on its first ``labels`` call, as prometheus_client's ``Histogram`` does.
    """

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], bounds: Sequence[float]
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.bounds = tuple(bounds)
        # The "le" label of each bucket, written as prometheus_client's Histogram writes it.
        self.les = tuple(floatToGoString(b) for b in self.bounds)  # type: ignore[no-untyped-call]
        self.series: dict[tuple[str, ...], LocalHistogram] = {}
        if not self.labelnames:
            self.labels()

    def labels(self, *values: str) -> LocalHistogram:
        series = self.series.get(values)
        if series is None:
            series = self.series[values] = LocalHistogram(self.bounds)
        return series

    def family(self, series: Series) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, histogram in series.items():
            buckets = list(zip(self.les, histogram.cumulative(), strict=True))
            family.add_metric(values, buckets, histogram.total)
        return family

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield self.family({})

    def collect(self) -> Iterator[HistogramMetricFamily]:
        yield self.family(self.series)


def load(path: str, metrics: Sequence[HistogramMetric]) -> None:
    """Add the series a worker saved in ``path`` to ``metrics``."""
    by_name = {metric.name: metric for metric in metrics}
    with open(path, encoding="utf-8") as file:
        state = json.load(file)
    for name, series in state.items():
        for values, counts, total in series:
            by_name[name].labels(*values).add(counts, total)


class WorkerFile:
    """The histograms of the worker ``pid`` in ``directory``, saved at each flush that changed them.

    Each save replaces the file whole, so that a scrape in another worker reads
    the old one or the new one, never half of one. A file of ``pid`` left by an
    earlier worker (process ids are reused) is taken over, as prometheus_client
    takes over its ``*.db`` files: that worker's counts stay in the totals.
    """

    def __init__(self, directory: str, pid: int, metrics: Sequence[HistogramMetric]) -> None:
        self.path = os.path.join(directory, WORKER_FILES.replace("*", str(pid)))
        self.metrics = metrics
        self._saved = ""
        if os.path.exists(self.path):
            load(self.path, metrics)

    def save(self) -> None:
        text = json.dumps(
            {
                metric.name: [
                    [list(values), h.counts, h.total] for values, h in metric.series.items()
                ]
                for metric in self.metrics
            }
        )
        # Unchanged, nothing written: replacing a file costs a millisecond or more on ext4.
        if text == self._saved:
            return
        partial = self.path + ".partial"
        with open(partial, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(partial, self.path)
        self._saved = text


class WorkersSum:
    """Every worker's histograms in ``directory``, summed: a prometheus_client collector.

    A labelled metric no worker has a series of yet is left out, as
    ``MultiProcessCollector`` leaves out a labelled metric no worker has used.
    """

    def __init__(self, directory: str, metrics: Sequence[HistogramMetric]) -> None:
        self.directory = directory
        self.metrics = metrics

    def collect(self) -> Iterator[HistogramMetricFamily]:
        sums = [
            HistogramMetric(m.name, m.documentation, m.labelnames, m.bounds) for m in self.metrics
        ]
        for path in sorted(glob.glob(os.path.join(self.directory, WORKER_FILES))):
            load(path, sums)
        for summed in sums:
            if summed.series:
                yield from summed.collect()
