"""The ``dantaro`` command line: one module per command group; each only parses, calls its layer and prints.

``entry`` is the console script's entry point (also ``python -m app.cli``): ``app.cli.main.main`` in a process of its
own, whose start is imported with the collector paused and then frozen (``app.cli.startup``). ``app.cli.main`` has
``main`` (one command in the caller's process), ``build_parser`` and ``COMMANDS``; this package imports nothing more
until ``entry`` runs.
"""

from __future__ import annotations

from app.cli.startup import collector_paused

__all__ = ["entry"]


def entry() -> int:
    """Run the command of ``sys.argv`` as the process's owner; returns the exit status."""
    with collector_paused(freeze=True):
        from app.cli.main import main
    return main(owns_process=True)
