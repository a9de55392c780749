"""Generic Prometheus helpers shared by the API and the worker (metric definitions live with their process).

Invariants: durations are in seconds (``*_seconds`` metrics), latency buckets cover sub-millisecond to
multi-second requests; nothing here registers a metric or builds a registry at import time. ``LoopCounter`` and
``LoopHistogram`` are for series updated on every request from one thread (the API's event loop): an event is a
dict update (prometheus_client takes a lock per value and per bucket), and the samples are built at scrape time.

Several processes (``dantaro api --workers N``) share one spool directory in prometheus_client's multiprocess
file format: each process's ``ProcessSpool`` writes its loop series (absolute values) to its own
``counter_loop_<pid>.db`` / ``histogram_loop_<pid>.db``; ``aggregated_exposition`` sums every file's counters and
histogram buckets (``MultiProcessCollector``); ``retire_process`` folds a dead process's files into
``*_loop_retired.db``, so totals never go down and the directory does not grow with restarts. Readers hold a shared
lock on the directory's ``.lock`` file and ``retire_process`` an exclusive one, so a scrape never sees a process
counted twice or not at all.
"""

from __future__ import annotations

import fcntl
import os
from bisect import bisect_left
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Generic, Literal, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

# Request latencies: the API answers in about a millisecond; the tail reaches into seconds when storage is slow.
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

K = TypeVar("K", bound=Hashable)
C = TypeVar("C")
SpoolEntry = tuple[str, float]  # (multiprocess file key, value)
SPOOL_KINDS: tuple[Literal["counter", "histogram"], ...] = ("counter", "histogram")


def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The text exposition of ``registry`` and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


class BoundChildren(Generic[K, C]):
    """Memoised label children: ``metric.labels(...)`` costs a lock and a tuple build; a dict hit does not.

    ``bind(key)`` builds the child once per key; label sets must be bounded (route templates, not raw paths).
    """

    def __init__(self, bind: Callable[[K], C]) -> None:
        self._bind = bind
        self._children: dict[K, C] = {}

    def __getitem__(self, key: K) -> C:
        """The child for ``key``, bound on first use."""
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._bind(key)
        return child

    def bind_all(self, keys: Iterable[K]) -> None:
        """Bind every key now (so each series is exported, at zero, before its first event)."""
        for key in keys:
            self[key]


class LoopCounter(Collector):
    """A labelled counter updated from one thread without locks, exported as ``<name>_total`` at scrape time."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], *, registry: CollectorRegistry):
        self._name, self._documentation, self._labelnames = name, documentation, list(labelnames)
        self._values: dict[tuple[str, ...], float] = {}
        registry.register(self)

    def inc(self, labels: tuple[str, ...], amount: float = 1.0) -> None:
        """Add ``amount`` to the series of ``labels`` (one value per label name, as strings)."""
        values = self._values
        values[labels] = values.get(labels, 0.0) + amount

    def ensure(self, labels: tuple[str, ...]) -> None:
        """Export the series of ``labels`` (at zero) before its first event."""
        self._values.setdefault(labels, 0.0)

    kind: Literal["counter"] = "counter"

    def spool_entries(self) -> Iterator[SpoolEntry]:
        """Every series as a multiprocess file entry (``ProcessSpool``)."""
        name, doc = self._name, self._documentation
        for labels, value in list(self._values.items()):
            yield mmap_key(name, name + "_total", self._labelnames, list(labels), doc), value

    def collect(self) -> Iterator[Metric]:
        """The counter family with every series seen."""
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for labels, value in list(self._values.items()):
            family.add_metric(labels, value)
        yield family

    def describe(self) -> Iterator[Metric]:
        """The family without samples (registration checks names with it)."""
        yield CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)


class LoopHistogram(Collector):
    """A labelled histogram updated from one thread without locks: bucket counts per series, cumulated at scrape."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ):
        self._name, self._documentation, self._labelnames = name, documentation, list(labelnames)
        self._bounds = tuple(buckets)
        self._series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}  # labels -> (counts, [sum])
        registry.register(self)

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        """Count ``value`` in the first bucket whose upper bound is >= it (the last one is +Inf)."""
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = ([0] * (len(self._bounds) + 1), [0.0])
        series[0][bisect_left(self._bounds, value)] += 1
        series[1][0] += value

    kind: Literal["histogram"] = "histogram"

    def spool_entries(self) -> Iterator[SpoolEntry]:
        """Every series as multiprocess file entries: each bucket's own count (not cumulated) and the sum."""
        name, doc, names = self._name, self._documentation, self._labelnames
        bounds = (*map(floatToGoString, self._bounds), "+Inf")
        for labels, (counts, total) in list(self._series.items()):
            for bound, count in zip(bounds, counts, strict=True):
                yield mmap_key(name, name + "_bucket", [*names, "le"], [*labels, bound], doc), float(count)
            yield mmap_key(name, name + "_sum", names, list(labels), doc), total[0]

    def collect(self) -> Iterator[Metric]:
        """The histogram family: cumulative buckets, count and sum per series."""
        family = HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for labels, (counts, total) in list(self._series.items()):
            cumulative, running = [], 0
            for bound, count in zip((*map(floatToGoString, self._bounds), "+Inf"), counts, strict=True):
                running += count
                cumulative.append((bound, float(running)))
            family.add_metric(list(labels), cumulative, sum_value=total[0])
        yield family

    def describe(self) -> Iterator[Metric]:
        """The family without samples."""
        yield HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)


class ProcessSpool:
    """This process's loop series in the shared spool directory, rewritten whole by ``flush``."""

    def __init__(
        self, directory: Path, collectors: Sequence[LoopCounter | LoopHistogram], *, pid: int | None = None
    ) -> None:
        self.directory = directory
        self._collectors = collectors
        pid = pid or os.getpid()  # another pid: tests that play several processes in one
        self._files = {kind: MmapedDict(str(directory / f"{kind}_loop_{pid}.db")) for kind in SPOOL_KINDS}

    def flush(self) -> None:
        """Write every series' current value (idempotent: values are absolute)."""
        for collector in self._collectors:
            spool = self._files[collector.kind]
            for key, value in collector.spool_entries():
                spool.write_value(key, value, 0.0)

    def close(self) -> None:
        """A last flush, then close the files (they stay for the aggregation)."""
        self.flush()
        for spool in self._files.values():
            spool.close()


class _Families(Collector):
    """Metric families built elsewhere (the aggregated spool), exposed as they are."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        """The families."""
        yield from self._families


@contextmanager
def _spool_lock(directory: Path, *, exclusive: bool) -> Iterator[None]:
    with (directory / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield  # closing the file releases the lock


def aggregated_exposition(directory: Path, *, local: Iterable[Collector] = ()) -> bytes:
    """The text exposition of every process's spooled series, summed, followed by ``local`` (this process's own
    view, e.g. scrape-time gauges)."""
    with _spool_lock(directory, exclusive=False):
        families = list(MultiProcessCollector(None, path=str(directory)).collect())
    registry = CollectorRegistry(auto_describe=False)
    for collector in (_Families(families), *local):
        registry.register(collector)
    return generate_latest(registry)


def retire_process(directory: Path, pid: int) -> None:
    """Fold the spool files of process ``pid`` (it exited) into the retired totals, then remove them."""
    with _spool_lock(directory, exclusive=True):
        for kind in SPOOL_KINDS:
            dead = directory / f"{kind}_loop_{pid}.db"
            if not dead.exists():
                continue
            retired = MmapedDict(str(directory / f"{kind}_loop_retired.db"))
            try:
                for key, value, _, _ in MmapedDict.read_all_values_from_file(str(dead)):
                    retired.write_value(key, retired.read_value(key)[0] + value, 0.0)
            finally:
                retired.close()
            dead.unlink()
