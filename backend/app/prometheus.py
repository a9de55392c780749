"""Generic Prometheus helpers shared by the API and the worker (metric definitions live with their process).

Invariants: durations are in seconds (``*_seconds`` metrics), latency buckets cover sub-millisecond to
multi-second requests; nothing here registers a metric or builds a registry at import time. ``LoopCounter`` and
``LoopHistogram`` are for series updated on every request from one thread (the API's event loop): an event is a
dict update (prometheus_client takes a lock per value and per bucket), and the samples are built at scrape time.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import Generic, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

# Request latencies: the API answers in about a millisecond; the tail reaches into seconds when storage is slow.
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

K = TypeVar("K", bound=Hashable)
C = TypeVar("C")


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
