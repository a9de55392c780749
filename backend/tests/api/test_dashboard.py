"""The dashboard's files as the API serves them: the page and its content-hashed assets, caching, the
Content-Security-Policy, and what the files must never hold (inline code, third-party origins, keys). The page in
a real browser: ``tests/dashboard/``."""

from __future__ import annotations

import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.dashboard_assets import ASSET_CACHE_CONTROL, DASHBOARD_DIR, build_dashboard
from app.config import DEVELOPMENT_KEY
from tests.support.paths import REPO_ROOT

VENDORED = DASHBOARD_DIR / "vendor" / "lightweight-charts"
LIBRARY_VERSION = "5.2.1"


class _Page(HTMLParser):
    """The page's tags and attributes, and the text of its script and style elements."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline: list[str] = []
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._open = tag

    def handle_data(self, data: str) -> None:
        if self._open in {"script", "style"} and data.strip():
            self.inline.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._open = None


def _page(client: TestClient) -> _Page:
    response = client.get("/dashboard")
    assert response.status_code == 200 and response.headers["content-type"] == "text/html; charset=utf-8"
    page = _Page()
    page.feed(response.text)
    return page


def _loaded_urls(page: _Page) -> list[str]:
    """What the browser loads by itself: script src, stylesheet and icon href."""
    return [a["src"] or "" for t, a in page.tags if t == "script"] + [
        a["href"] or "" for t, a in page.tags if t == "link"
    ]


def test_the_page_is_revalidated_and_carries_the_policy(client: TestClient) -> None:
    response = client.get("/dashboard")
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self';" in policy and "style-src 'self';" in policy
    assert "connect-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe" not in policy
    assert response.headers["cache-control"] == "no-cache" and response.headers["x-content-type-options"] == "nosniff"
    again = client.get("/dashboard", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert client.get("/dashboard/").content == response.content


def test_every_asset_is_served_immutable_under_its_content_hash(client: TestClient) -> None:
    urls = _loaded_urls(_page(client))
    assert len(urls) == 12 and all(url.startswith("/dashboard/assets/") for url in urls)
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["cache-control"] == ASSET_CACHE_CONTROL
        digest = re.search(r"\.([0-9a-f]{12})\.\w+$", url)
        assert digest and hashlib.sha256(response.content).hexdigest()[:12] == digest[1], url
    assert client.get("/dashboard/assets/js/app.js").status_code == 404
    stale = re.sub(r"\.[0-9a-f]{12}\.js$", ".000000000000.js", next(u for u in urls if "/js/app." in u))
    missing = client.get(stale)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert "/dashboard" not in client.get("/openapi.json").text  # not part of the API's spec


def test_no_inline_code_no_third_party_origin(client: TestClient) -> None:
    page = _page(client)
    assert not page.inline, "inline script or style"
    assert not [t for t, a in page.tags if "style" in a or any(name.startswith("on") for name in a)]
    assert all(a.get("src") for t, a in page.tags if t == "script")
    external = [a["href"] for t, a in page.tags if t == "a" and (a.get("href") or "").startswith("http")]
    assert external == ["https://www.tradingview.com/"]  # the library's required attribution link, not a load


def _own_sources() -> list[Path]:
    return [p for p in DASHBOARD_DIR.rglob("*") if p.is_file() and "vendor" not in p.parts]


def test_no_file_holds_a_key_or_puts_one_in_a_url() -> None:
    for path in DASHBOARD_DIR.rglob("*"):
        if path.is_file():
            text = path.read_bytes()
            assert DEVELOPMENT_KEY.encode() not in text and not re.search(rb"dk_[0-9a-f]{8}_", text), path
    scripts = "\n".join(p.read_text() for p in _own_sources() if p.suffix == ".js")
    assert "localStorage" not in scripts and "document.cookie" not in scripts
    assert scripts.count("sessionStorage.setItem(STORAGE_KEY") == 1  # the key: sessionStorage only
    assert re.findall(r"Authorization: \"Bearer \" \+ secret", scripts)  # sent as a header
    assert "innerHTML" not in scripts and "eval(" not in scripts


def test_the_charting_library_is_vendored_with_its_license_and_version() -> None:
    library = (VENDORED / "lightweight-charts.standalone.production.js").read_text()
    assert f"TradingView Lightweight Charts™ v{LIBRARY_VERSION}" in library[:300]
    assert "Apache License" in (VENDORED / "LICENSE").read_text()
    assert "TradingView, Inc." in (VENDORED / "NOTICE").read_text()
    assert f"lightweight-charts@{LIBRARY_VERSION}" in (REPO_ROOT / "docs" / "dashboard.md").read_text()
    assert f"{LIBRARY_VERSION} —" in (DASHBOARD_DIR / "index.html").read_text()


def test_a_page_naming_a_missing_asset_fails_when_read(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text('<script src="@asset(js/gone.js)"></script>')
    with pytest.raises(FileNotFoundError, match=r"@asset\(js/gone.js\)"):
        build_dashboard(tmp_path)
