"""The client's models against the API's OpenAPI document, generated from ``create_app(settings)``: every component
schema has a client model of the same name and every model a component, with the same fields, the same required
ones, the same defaults and the same types (``$ref``s by name, enums and literals by their values, nullability,
lists and maps by their items). Descriptions, titles and value constraints are the API's to check, not compared.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from dantaro_client import models, track_models
from pydantic import BaseModel

from app.api.app import create_app
from app.config import Settings

Shape = tuple[Any, ...]
REQUIRED = "<required>"


@pytest.fixture(scope="module")
def components() -> dict[str, Any]:
    """The API's component schemas, from the OpenAPI document its app serves."""
    document = create_app(Settings(_env_file=None, database_url="sqlite://", redis_url=None)).openapi()  # type: ignore[call-arg]
    return dict(document["components"]["schemas"])


def client_models() -> dict[str, type[BaseModel]]:
    """Every public model class of the client."""
    found: dict[str, type[BaseModel]] = {}
    for module in (models, track_models):
        for name, value in vars(module).items():
            public = not name.startswith("_") and getattr(value, "__module__", None) == module.__name__
            if (
                public
                and inspect.isclass(value)
                and issubclass(value, models.ApiModel)
                and value is not models.ApiModel
            ):
                found[name] = value
    return found


def shape(schema: Any, definitions: Mapping[str, Any]) -> Shape:
    """A comparable form of a JSON schema: what a value may be, nothing about how it is documented."""
    if schema is True or schema == {}:
        return ("any",)
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        target = definitions[name]
        return ("object", name) if "properties" in target else shape(target, definitions)
    if "anyOf" in schema:
        return ("anyOf", *sorted({shape(option, definitions) for option in schema["anyOf"]}, key=repr))
    values = [schema["const"]] if "const" in schema else schema.get("enum")
    if values is not None:
        return ("enum", *sorted(values, key=repr))
    kind = schema.get("type")
    if kind in {"array", "object"}:  # a list of items, or a map of values (no model has fixed keys but by $ref)
        return (kind, shape(schema.get("items" if kind == "array" else "additionalProperties", True), definitions))
    return (kind, schema.get("format"))


def fields(schema: Mapping[str, Any], definitions: Mapping[str, Any]) -> dict[str, Any]:
    """Each property's shape, and its default or ``REQUIRED`` (FastAPI leaves a ``null`` default out)."""
    required = set(schema.get("required", ()))
    return {
        name: (shape(spec, definitions), REQUIRED if name in required else spec.get("default"))
        for name, spec in schema.get("properties", {}).items()
    }


def _pairs(components: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], type[BaseModel]]]:
    for name, model in client_models().items():
        yield name, components[name], model


def test_every_component_has_a_model_and_every_model_a_component(components: dict[str, Any]) -> None:
    objects = {name for name, schema in components.items() if "properties" in schema}
    assert objects == set(client_models()), "a component schema without a client model, or the reverse"


@pytest.mark.parametrize("name", sorted(client_models()))
def test_a_model_has_its_component_s_fields_required_fields_defaults_and_types(
    name: str, components: dict[str, Any]
) -> None:
    model = client_models()[name]
    ours = model.model_json_schema(ref_template="#/$defs/{model}")
    definitions = {**ours.get("$defs", {}), name: ours}
    theirs = fields(components[name], components)
    assert fields(ours, definitions) == theirs


def test_the_comparison_sees_a_drift(components: dict[str, Any]) -> None:
    """A changed type, a lost field and a required field made optional are each noticed."""
    schema = components["StreamRun"]
    ours = fields(models.StreamRun.model_json_schema(), components)
    assert ours == fields(schema, components)
    for change in (
        {"properties": {**schema["properties"], "as_of": {"type": "string"}}},
        {"properties": {k: v for k, v in schema["properties"].items() if k != "exchange"}},
        {"required": [k for k in schema["required"] if k != "run_id"]},
    ):
        assert fields({**schema, **change}, components) != ours, change
