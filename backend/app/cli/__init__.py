"""The ``dantaro`` command line: one module per command group; each only parses, calls its layer and prints.

``main`` is the console script's entry point (also ``python -m app.cli``); ``build_parser`` lists every command.
"""

from app.cli.startup import collector_paused

with collector_paused():  # app.cli.startup: the command line's own imports
    from app.cli.main import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "build_parser", "main"]
