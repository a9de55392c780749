"""``GET /dashboard`` (the read-only dashboard page) and ``GET /dashboard/assets/{path}`` (its hashed files).

No key is needed to load the page or its files: they hold no data and no secret. The page asks for an API key,
keeps it in ``sessionStorage`` and calls ``/api/v1`` with it (``app/dashboard/js/api.js``). Headers and caching:
``app.api.dashboard_assets``. An asset URL whose hash is not the current one is a 404 (a page from before an
upgrade reloads and names the new ones).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from app.api.dashboard_assets import (
    ASSET_CACHE_CONTROL,
    PAGE_CACHE_CONTROL,
    SECURITY_HEADERS,
    dashboard,
)
from app.api.errors import ApiError
from app.api.http_cache import matches

router = APIRouter(tags=["dashboard"], include_in_schema=False)


@router.get("/dashboard")
@router.get("/dashboard/")
async def get_dashboard_page(request: Request) -> Response:
    """The dashboard page (revalidated on every load: it names the current asset URLs)."""
    found = dashboard()
    headers = {**SECURITY_HEADERS, "Cache-Control": PAGE_CACHE_CONTROL, "ETag": found.page_etag}
    if matches(request.headers.get("if-none-match"), found.page_etag):
        return Response(status_code=304, headers=headers)
    return Response(found.page, media_type="text/html; charset=utf-8", headers=headers)


@router.get("/dashboard/assets/{path:path}")
async def get_dashboard_asset(path: Annotated[str, Path(max_length=200)]) -> Response:
    """One of the dashboard's files by its content-hashed URL, cacheable for a year."""
    asset = dashboard().assets.get(f"/dashboard/assets/{path}")
    if asset is None:
        raise ApiError(status_code=404, code="not_found", message=f"no dashboard file /dashboard/assets/{path}")
    headers = {**SECURITY_HEADERS, "Cache-Control": ASSET_CACHE_CONTROL}
    return Response(asset.content, media_type=asset.content_type, headers=headers)
