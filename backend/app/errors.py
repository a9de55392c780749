"""The one error type for input a user can fix, raised by any layer and reported by every command the same way, and
the one JSON shape of every HTTP error (the API's handlers and the server's own early answers both use it).

Invariants: the message says what was wrong and what to write instead, on one line; ``dantaro`` prints it after the
command's name and exits 2. An HTTP error echoes at most ``EXCERPT_CHARS`` characters of any input. Imports only the
standard library.
"""

from __future__ import annotations

EXCERPT_CHARS = 64


class UsageError(ValueError):
    """An argument, setting or input file the user can fix; the message says how, on one line."""


def error_document(*, code: str, message: str) -> dict[str, object]:
    """The body of every HTTP error: ``{"success": false, "error": {"code": ..., "message": ...}}``."""
    return {"success": False, "error": {"code": code, "message": message}}


def excerpt(text: str, *, max_chars: int = EXCERPT_CHARS) -> str:
    """``text`` when it is short, else its first ``max_chars`` characters, ``…`` and how many were left out."""
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}… ({len(text) - max_chars} more characters)"
