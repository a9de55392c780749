"""JSON responses serialised with orjson.

Datetimes render as ISO 8601 with their UTC offset, tuples as arrays, read-only mappings as objects, NaN and
infinities as ``null``. Handlers build plain dicts and return ``OrjsonResponse`` directly, which skips FastAPI's
response-model validation on the hot path; the pydantic models in ``schemas`` document the same shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import JSONResponse


def _to_json(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


def dump_json(content: Any) -> bytes:
    """Serialise ``content`` to JSON bytes with the API's conventions."""
    return orjson.dumps(content, default=_to_json)


class OrjsonResponse(JSONResponse):
    """A JSON response rendered by orjson (a ``JSONResponse``, so the OpenAPI document describes the route's
    response model)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Serialise the body."""
        return dump_json(content)
