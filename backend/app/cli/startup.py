"""Starting a command: its modules are imported with Python's cyclic garbage collector paused.

Invariant: what a start creates (modules, classes, functions, settings) lives as long as the process, so collecting
while it loads only walks the same objects again and again (about a tenth of the imports' CPU for ``dantaro api``).
When the block ends those objects are frozen (``gc.freeze``): left in the youngest generation, the first collection
after the pause would walk all of them, and the older generations again later (0.45 s of a start's CPU on a slow
machine). The collector is back in the state it was in when the block ends, whether the imports succeeded or not.
"""

from __future__ import annotations

import gc
import importlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block; what it created is then frozen and the collector restored."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def load(modules: Sequence[str]) -> None:
    """Import ``modules`` with the collector paused."""
    with collector_paused():
        for name in modules:
            importlib.import_module(name)
