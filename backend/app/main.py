"""ASGI entry points: ``uvicorn --factory app.main:create_app`` or ``uvicorn app.main:app``.

Importing this module builds nothing. ``create_app()`` reads the settings from the environment when it is called;
``app`` is built the same way when it is first looked up (uvicorn does that while loading ``app.main:app``), and each
lookup builds a new app.
"""

from __future__ import annotations

from fastapi import FastAPI

from app.api.app import create_app

__all__ = ["create_app"]  # and ``app``, built on lookup by ``__getattr__``


def __getattr__(name: str) -> FastAPI:
    """Build ``app`` from the environment on lookup (``uvicorn app.main:app``)."""
    if name == "app":
        return create_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
