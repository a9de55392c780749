"""How the routers' routes are put on the app, and what the OpenAPI document says beyond them.

Routes are registered flat on the app (``add_routes_flat``); every route of an authenticated router must depend on
``require_api_key`` or ``snapshot_loader``, or registering it raises ``TypeError`` (no data route without a key
check). The OpenAPI additions: the bearer scheme on each operation under the API prefix, the snapshot loader's
query parameters on the routes that take it, and models no operation returns as JSON (the stream's events).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from app.api.deps import LOADER_QUERY_PARAMETERS, require_api_key, snapshot_loader

BEARER_SCHEME = "HTTPBearer"

AUTHENTICATING_DEPENDENCIES = (require_api_key, snapshot_loader)


def _depends_on(dependant: Dependant, calls: tuple[Callable[..., Any], ...]) -> bool:
    return any(dep.call in calls or _depends_on(dep, calls) for dep in dependant.dependencies)


def add_routes_flat(app: FastAPI, router: APIRouter, *, prefix: str, authenticated: bool = False) -> None:
    """Register ``router``'s routes directly on ``app`` (FastAPI keeps included routers nested, and walking the
    nesting on every request costs more than the handlers themselves). With ``authenticated`` every route must
    depend on ``require_api_key`` or ``snapshot_loader`` (which authenticates first), else this raises."""
    for route in router.routes:
        assert isinstance(route, APIRoute)
        if authenticated and not _depends_on(route.dependant, AUTHENTICATING_DEPENDENCIES):
            raise TypeError(f"route {route.path} must depend on AuthDep or SnapshotsDep (API key check)")
        app.add_api_route(
            prefix + route.path,
            route.endpoint,
            methods=sorted(route.methods or ()),
            response_model=route.response_model,
            response_class=route.response_class,
            responses=route.responses,
            tags=route.tags,
            summary=route.summary,
            description=route.description,
            dependencies=route.dependencies,
            name=route.name,
            include_in_schema=route.include_in_schema,
            openapi_extra=_loader_docs(route),
        )


def _loader_docs(route: APIRoute) -> dict[str, Any] | None:
    if not _depends_on(route.dependant, (snapshot_loader,)):
        return route.openapi_extra
    extra = route.openapi_extra or {}
    own = [dict(p) for p in extra.get("parameters", ())]  # parameters the handler reads itself (``horizon``)
    return {**extra, "parameters": own + [dict(p) for p in LOADER_QUERY_PARAMETERS]}


def declare_bearer_auth(app: FastAPI, *, prefix: str) -> None:
    """Document the bearer scheme on every operation under ``prefix`` (auth itself is a flat router dependency)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes[BEARER_SCHEME] = {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <api key>"}
        for path, operations in schema.get("paths", {}).items():
            if path.startswith(prefix):
                for operation in operations.values():
                    operation["security"] = [{BEARER_SCHEME: []}]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def declare_schemas(app: FastAPI, models: tuple[type[BaseModel], ...]) -> None:
    """List ``models`` in the OpenAPI components though no operation returns them as JSON (the stream's events)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in models:
            found = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(found.pop("$defs", {}))
            schemas.setdefault(model.__name__, found)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
