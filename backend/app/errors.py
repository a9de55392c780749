"""The one error type for input a user can fix, raised by any layer and reported by every command the same way.

Invariant: the message says what was wrong and what to write instead, on one line; ``dantaro`` prints it after the
command's name and exits 2. Imports only the standard library.
"""

from __future__ import annotations


class UsageError(ValueError):
    """An argument, setting or input file the user can fix; the message says how, on one line."""
