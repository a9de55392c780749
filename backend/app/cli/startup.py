"""Starting a command: its modules are imported with Python's cyclic garbage collector paused.

Invariant: what a start creates (modules, classes, functions, settings) lives as long as the process, so collecting
while it loads only walks the same objects again and again (about a tenth of the imports' CPU for ``dantaro api``).
The collector is back in the state it was in when the block ends, whether the imports succeeded or not.
"""

from __future__ import annotations

import gc
import importlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block (it is restored afterwards)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load(modules: Sequence[str]) -> None:
    """Import ``modules`` with the collector paused."""
    with collector_paused():
        for name in modules:
            importlib.import_module(name)
