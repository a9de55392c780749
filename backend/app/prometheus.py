"""Generic Prometheus helpers shared by the API and the worker (metric definitions live with their process).

Invariants: durations are in seconds (``*_seconds`` metrics), latency buckets cover sub-millisecond to
multi-second requests; nothing here registers a metric or builds a registry at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

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
