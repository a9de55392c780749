"""What an old client relies on: every field of every 200 response, as a path with its JSON types, from an OpenAPI
document; and a check of real response bodies against such a contract.

A path is the field names from the body's root joined by ``/``, with ``[]`` for the items of an array and ``{}`` for
the values of an object keyed by data (``recommendations/[]/total_score``, ``support_levels/{}/symbol``). Each path
records its JSON types (``integer`` also satisfies ``number``; ``any`` is a free-form value), whether it is required
where its parent is present, and the enum and format (``date-time``: ISO 8601 with an offset) of a string field.

Regenerate the pinned contract of the API before issue 10 (commit 7814511):

    git archive 7814511 backend | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old/backend python -c "import json; from app.api.app import create_app; \\
        from app.config import Settings; print(json.dumps(create_app(Settings(redis_url=None)).openapi()))" > old.json
    cd backend && python -m tests.support.contract old.json > tests/fixtures/api/legacy_contract.json
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

Contract = dict[str, dict[str, dict[str, Any]]]  # "GET /api/v1/x" -> path -> {"types", "required", "enum"?}
JSON_TYPES = {type(None): "null", bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}


def contract_of(openapi: Mapping[str, Any]) -> Contract:
    """Every 200 response field of every operation in ``openapi``."""
    contract: Contract = {}
    for route, operations in openapi["paths"].items():
        for method, operation in operations.items():
            content = operation.get("responses", {}).get("200", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema")
            if schema:
                fields: dict[str, dict[str, Any]] = {}
                _walk(openapi, schema, "", required=True, out=fields)
                contract[f"{method.upper()} {route}"] = fields
    return contract


def _resolve(openapi: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in schema:
        schema = openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _variants(openapi: Mapping[str, Any], schema: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    schema = _resolve(openapi, schema)
    if "anyOf" in schema:
        return [variant for part in schema["anyOf"] for variant in _variants(openapi, part)]
    return [schema]


def _walk(
    openapi: Mapping[str, Any], schema: Mapping[str, Any], path: str, *, required: bool, out: dict[str, Any]
) -> None:
    variants = _variants(openapi, schema)
    if path:
        entry: dict[str, Any] = {"types": sorted({v.get("type", "any") for v in variants}), "required": required}
        enums = sorted({value for v in variants for value in v.get("enum", ())})
        if enums:
            entry["enum"] = enums
        formats = sorted({v["format"] for v in variants if "format" in v})
        if formats:
            entry["format"] = formats
        out[path] = entry
    prefix = f"{path}/" if path else ""
    for variant in variants:
        for name, child in variant.get("properties", {}).items():
            _walk(openapi, child, prefix + name, required=name in variant.get("required", ()), out=out)
        if isinstance(variant.get("additionalProperties"), Mapping) and variant["additionalProperties"]:
            _walk(openapi, variant["additionalProperties"], prefix + "{}", required=False, out=out)
        if "items" in variant:
            _walk(openapi, variant["items"], prefix + "[]", required=False, out=out)


def json_type(value: object) -> str:
    """The JSON type of a decoded JSON value."""
    return "object" if isinstance(value, dict) else JSON_TYPES[type(value)]


def _is_datetime(text: str) -> bool:
    try:
        return datetime.fromisoformat(text).utcoffset() is not None
    except ValueError:
        return False


def values_at(body: object, path: str) -> Iterator[tuple[str, object]]:
    """(concrete path, value) of every value at ``path`` in ``body``; absent fields yield nothing."""
    head, _, rest = path.partition("/")
    if head == "[]":
        children = list(enumerate(body)) if isinstance(body, list) else []
    elif head == "{}":
        children = list(body.items()) if isinstance(body, dict) else []
    else:
        children = [(head, body[head])] if isinstance(body, dict) and head in body else []
    for key, child in children:
        if not rest:
            yield str(key), child
        else:
            yield from ((f"{key}/{sub}", value) for sub, value in values_at(child, rest))


def violations(body: object, fields: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Where ``body`` breaks the contract ``fields``: a field of a wrong type or enum, a required field missing."""
    problems: list[str] = []
    for path, entry in fields.items():
        allowed = set(entry["types"]) | ({"integer"} if "number" in entry["types"] else set())
        for where, value in values_at(body, path):
            if "any" not in allowed and json_type(value) not in allowed:
                problems.append(f"{where}: {json_type(value)} is not {entry['types']}")
            if "enum" in entry and isinstance(value, str) and value not in entry["enum"]:
                problems.append(f"{where}: {value!r} is not one of {entry['enum']}")
            if "date-time" in entry.get("format", ()) and isinstance(value, str) and not _is_datetime(value):
                problems.append(f"{where}: {value!r} is not an ISO 8601 date-time")
        parent, _, name = path.rpartition("/")
        if entry["required"]:
            parents = values_at(body, parent) if parent else iter([("", body)])
            problems += [
                f"{where}/{name}: missing" for where, value in parents if isinstance(value, dict) and name not in value
            ]
    return problems


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as source:
        print(json.dumps(contract_of(json.load(source)), indent=1, sort_keys=True))
