"""Starting a command: its modules are imported with Python's cyclic garbage collector paused.

Invariant: what a start creates (modules, classes, functions, settings) lives as long as the process, so collecting
while it loads only walks the same objects again and again (about a tenth of the imports' CPU for ``dantaro api``).
A process entry (``app.cli.entry``) also freezes what is tracked when its imports end (``gc.freeze``): left in the
collector's generations, the first collection after the pause would walk all of it, and the older generations again
later (0.45 s of a start's CPU on a slow machine). Only the process's owner freezes — a frozen object is never
collected, so a caller that merely runs a command in its own process (the tests) must not. The collector is back in
the state it was in when the block ends, whether the imports succeeded or not.
"""

from __future__ import annotations

import gc
import importlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


@contextmanager
def collector_paused(*, freeze: bool = False) -> Iterator[None]:
    """Pause the cyclic garbage collector for the block; ``freeze``: freeze what is tracked when the block ends."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if was_enabled:
            gc.enable()


def load(modules: Sequence[str], *, freeze: bool = False) -> None:
    """Import ``modules`` with the collector paused (``freeze``: as ``collector_paused``)."""
    with collector_paused(freeze=freeze):
        for name in modules:
            importlib.import_module(name)
