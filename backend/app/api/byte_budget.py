"""``ByteBudgetMemo``: values by key, bounded in count and in bytes, for caches whose keys a client chooses.

One more value than either bound allows drops every value first: no eviction order is kept, and a client asking for
many new keys costs the process at most the bounds. A value larger than the byte bound alone is never kept; keeping a
key again replaces its value (and its bytes). The bytes are what the caller says a value holds. Not thread-safe: its
users touch it from the event loop only.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ByteBudgetMemo(Generic[K, V]):
    """At most ``max_entries`` values holding at most ``max_bytes`` (as told by ``keep``)."""

    def __init__(self, *, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.held_bytes = 0
        self._values: dict[K, tuple[V, int]] = {}

    def get(self, key: K) -> V | None:
        """The value kept under ``key``, or None."""
        found = self._values.get(key)
        return None if found is None else found[0]

    def keep(self, key: K, value: V, *, size_bytes: int) -> None:
        """Keep ``value`` (holding ``size_bytes``) under ``key``, replacing what was there; every value is dropped
        first when one more would pass ``max_entries`` or ``max_bytes``, and one larger than ``max_bytes`` is not
        kept."""
        replaced = self._values.pop(key, None)
        if replaced is not None:
            self.held_bytes -= replaced[1]
        if size_bytes > self.max_bytes:
            return
        if len(self._values) >= self.max_entries or self.held_bytes + size_bytes > self.max_bytes:
            self._values.clear()
            self.held_bytes = 0
        self._values[key] = (value, size_bytes)
        self.held_bytes += size_bytes
