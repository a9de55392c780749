"""The dashboard's files (``app/dashboard/``): every asset under a content-hashed URL, and the page that names them.

Invariants:
- An asset's URL is ``/dashboard/assets/<path without suffix>.<first 12 hex of its SHA-256>.<suffix>``: a changed
  file gets a new URL, so assets are served ``immutable`` for a year; only the page itself (``index.html``, which
  names the current URLs) is revalidated on every load (``no-cache`` with an ``ETag``).
- The page is ``index.html`` with each ``@asset(path)`` replaced by that asset's URL; naming a file that does not
  exist fails when the files are read, never in a browser.
- Every response carries the Content-Security-Policy below: scripts, styles, images and connections from this
  origin only; no inline script or style, no third-party origin, no framing, no form submission anywhere. The
  browser keeps the API key in ``sessionStorage`` and sends it as a Bearer header; no file here holds a key.
- The files are read once per process, on the first dashboard request (nothing is read at import time).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "dashboard"
PAGE = "index.html"
ASSETS_PATH = "/dashboard/assets/"
HASH_CHARS = 12
ASSET_REFERENCE = re.compile(r"@asset\(([\w./-]+)\)")
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
}
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
PAGE_CACHE_CONTROL = "no-cache"
ASSET_CACHE_CONTROL = "public, max-age=31536000, immutable"


@dataclass(frozen=True, slots=True)
class Asset:
    """One file as served: its bytes and content type."""

    content: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class Dashboard:
    """The rendered page, its validator, and every asset by its hashed URL."""

    page: bytes
    page_etag: str
    assets: dict[str, Asset]  # hashed URL -> asset
    urls: dict[str, str]  # file path (relative to the dashboard folder) -> hashed URL


def hashed_url(relative: str, content: bytes) -> str:
    """The content-hashed URL of the file at ``relative`` (a path under the dashboard folder)."""
    digest = hashlib.sha256(content).hexdigest()[:HASH_CHARS]
    path = Path(relative)
    return f"{ASSETS_PATH}{path.with_suffix('').as_posix()}.{digest}{path.suffix}"


def build_dashboard(directory: Path = DASHBOARD_DIR) -> Dashboard:
    """Read the dashboard's files: hash every asset and render the page with their URLs."""
    assets: dict[str, Asset] = {}
    urls: dict[str, str] = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        content_type = CONTENT_TYPES.get(path.suffix)
        if not path.is_file() or relative == PAGE or content_type is None:
            continue
        content = path.read_bytes()
        urls[relative] = hashed_url(relative, content)
        assets[urls[relative]] = Asset(content, content_type)

    def url_of(match: re.Match[str]) -> str:
        if match[1] not in urls:
            raise FileNotFoundError(f"{PAGE} names @asset({match[1]}), which is not in {directory}")
        return urls[match[1]]

    page = ASSET_REFERENCE.sub(url_of, (directory / PAGE).read_text(encoding="utf-8")).encode()
    etag = f'"{hashlib.sha256(page).hexdigest()[:HASH_CHARS]}"'
    return Dashboard(page=page, page_etag=etag, assets=assets, urls=urls)


@cache
def dashboard() -> Dashboard:
    """The dashboard of this installation, read on first use."""
    return build_dashboard()
