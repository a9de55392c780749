"""ASGI entry point: ``cd backend && uvicorn app.main:app``. Importing this builds no engine, client or settings."""

from __future__ import annotations

from app.api.app import create_app

app = create_app()
