"""The dashboard in headless Chromium against a real ``dantaro api`` on replay data.

The deployment: ``dantaro run`` replays the bundled history at one candle a second, from 70 days in (the replay's
default warm-up: the start refit has its whole fit window, so the labels are fitted ones, not the prior's HOLD),
until the track record has scored runs, then stops; ``dantaro api`` alone serves that database (so the data holds
still while the browser reads it), with a key made by ``dantaro keys create`` and one revoked by ``dantaro keys
revoke``. The last test publishes one more run with ``dantaro worker --once`` and watches the open page refresh
itself.

Screenshots of every view at 1280 and 390 px go to each test's output folder; with ``DASHBOARD_SCREENSHOTS_TO=docs/img``
the README's pictures (overview, recommendations, symbol) are written there too.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.support.browser import Browser, chromium
from tests.support.network import free_port
from tests.support.paths import REPO_ROOT
from tests.support.processes import ApiServer, DantaroProcess, create_api_key, dantaro_env, run_dantaro
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

SCORED_RUNS = 6  # scored runs at the default horizon before the replay stops
WARMUP_CANDLES = "1680"  # the replay's default: 70 days of 1h before the clock starts (dantaro_env's is 100)
WIDTHS = (1280, 390)
VIEWS = {
    "overview": "",
    "recommendations": "recommendations",
    "symbol": "symbol/BTC-USDT",
    "track-record": "track-record",
}
README_PICTURES = {
    "overview-1280.png": "dashboard-overview.png",
    "recommendations-1280.png": "dashboard-recommendations.png",
    "symbol-1280.png": "dashboard-symbol.png",
}
REFERENCE_LINES = {  # chart line id -> (served object, its key)
    "pivot:P": ("pivots", "pivot"),
    "pivot:R1": ("pivots", "r1"),
    "pivot:R2": ("pivots", "r2"),
    "pivot:S1": ("pivots", "s1"),
    "pivot:S2": ("pivots", "s2"),
    "profile:POC": ("volume_profile", "poc"),
    "profile:VAH": ("volume_profile", "value_area_high"),
    "profile:VAL": ("volume_profile", "value_area_low"),
}
DASHED, DOTTED = 2, 1  # lightweight-charts LineStyle
CHOOSE = "const s = document.getElementById(arguments[0]); s.value = arguments[1]; s.dispatchEvent(new Event('change'))"
UNAUTHORIZED = "401 (Unauthorized)"  # the browser's own log line for the refused key's requests


@dataclass
class Deployment:
    """The API serving replay data, its keys and its environment."""

    api: ApiServer
    env: dict[str, str]
    key: str
    revoked_key: str

    def get(self, path: str, **params: Any) -> Any:
        """``path``'s JSON body, asked with the key."""
        response = httpx2.get(
            self.api.base_url + path, params=params, headers={"Authorization": f"Bearer {self.key}"}, timeout=10
        )
        assert response.status_code == 200, response.text
        return response.json()


def _replay_until_scored(env: dict[str, str], log_path: Path) -> None:
    port = free_port()
    run = DantaroProcess(["run", "--host", "127.0.0.1", "--port", str(port)], env, log_path=log_path).start()
    url = f"http://127.0.0.1:{port}/api/v1/track-record"

    def scored() -> bool:
        assert run.alive, run.log_text()[-3000:]
        try:
            response = httpx2.get(url, headers={"Authorization": "Bearer development-user-server-key"}, timeout=2)
        except httpx2.HTTPError:
            return False
        return response.status_code == 200 and response.json()["runs_scored"] >= SCORED_RUNS

    try:
        wait_for(scored, timeout_s=240, what=f"{SCORED_RUNS} scored runs", poll_s=1.0)
    finally:
        run.kill()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("dashboard")
    warmup = {"DANTARO_REPLAY_WARMUP_CANDLES": WARMUP_CANDLES}
    _replay_until_scored(dantaro_env(root, DANTARO_ANALYSIS_INTERVAL_S="1", **warmup), root / "run.log")
    env = dantaro_env(root, DANTARO_ANALYSIS_INTERVAL_S="3600", **warmup)  # the stopped replay's runs stay fresh
    key = create_api_key(env, name="dashboard")
    revoked = create_api_key(env, name="revoked")
    assert run_dantaro(["keys", "revoke", revoked.split("_")[1]], env).returncode == 0
    api = ApiServer(env, log_path=root / "api.log")
    try:
        api.start(timeout_s=90)  # a loaded CI machine starts slowly
        yield Deployment(api, env, key, revoked)
    finally:
        api.kill()  # also when it did not answer in time


@pytest.fixture(scope="module")
def browser(deployment: Deployment) -> Iterator[Browser]:
    with chromium(deployment.api.base_url) as opened:
        yield opened


def _sign_in(browser: Browser, key: str) -> None:
    browser.wait("document.body.dataset.state === 'login'", what="the key form")
    field = browser.find("#api-key")
    field.clear()
    field.send_keys(key)
    browser.find("#login-form button[type=submit]").click()


def _table_symbols(browser: Browser) -> list[str]:
    return [row.get_attribute("data-symbol") or "" for row in browser.find_all("#recommendations-table tbody tr")]


def test_a_wrong_or_revoked_key_shows_the_message_and_the_form(browser: Browser, deployment: Deployment) -> None:
    browser.open()
    for key in ("dk_0000000000000000_not-a-key", deployment.revoked_key):
        _sign_in(browser, key)  # the shell leaves the login state at once, and returns to it when refused
        browser.wait(
            "document.body.dataset.state === 'login' && !document.getElementById('login-message').hidden",
            what="the refusal message",
        )
        assert "invalid or revoked API key" in browser.find("#login-message").text
        assert browser.find("#login").is_displayed() and not browser.find("#view").is_displayed()
        assert browser.js("return window.sessionStorage.getItem('dantaro.apiKey')") is None
    assert browser.console_problems(allowed=(UNAUTHORIZED,)) == []


def test_the_key_opens_the_ranked_table_in_the_apis_order(browser: Browser, deployment: Deployment) -> None:
    browser.open()
    _sign_in(browser, deployment.key)
    browser.wait_view("overview")
    renders = browser.renders()
    browser.find("#nav a[data-route=recommendations]").click()
    browser.wait_view("recommendations", after_renders=renders)
    served = deployment.get("/api/v1/recommendations", top_n=100)["recommendations"]
    assert _table_symbols(browser) == [row["symbol"] for row in served]
    labels = [cell.text.replace(" ", "_") for cell in browser.find_all("#recommendations-table tbody .badge")]
    assert labels == [row["recommendation_strength"] for row in served]
    assert set(labels) - {"HOLD"}, "the start refit fitted no model with a measured edge: every label is HOLD"
    browser.find("button[data-sort=score]").click()  # highest score first
    by_score = sorted(served, key=lambda row: (-row["total_score"], row["rank"]))
    assert _table_symbols(browser) == [row["symbol"] for row in by_score]
    label = served[-1]["recommendation_strength"]
    renders = browser.renders()
    browser.js(CHOOSE, "label-filter", label)
    browser.wait_view("recommendations", after_renders=renders)
    filtered = deployment.get("/api/v1/recommendations", top_n=100, label=label)["recommendations"]
    assert _table_symbols(browser) == [row["symbol"] for row in filtered] and filtered
    assert browser.console_problems() == []


def _wait_ink(browser: Browser, css: str, pixels: int) -> None:
    """Wait until the canvases in ``css`` hold more than ``pixels`` drawn pixels (the library paints on the next
    animation frames, after the view is in the page)."""
    wait_for(lambda: browser.canvas_ink(css) > pixels, timeout_s=10, what=f"a drawn chart in {css}", poll_s=0.1)


def _drawn_levels(browser: Browser) -> list[dict[str, Any]]:
    levels: list[dict[str, Any]] = browser.js(
        "return JSON.parse(document.getElementById('price-chart').dataset.levels)"
    )
    return levels


def _drawn_references(browser: Browser) -> dict[str, dict[str, Any]]:
    lines: list[dict[str, Any]] = browser.js(
        "return JSON.parse(document.getElementById('price-chart').dataset.references)"
    )
    assert len({line["id"] for line in lines}) == len(lines), lines  # one line per reference price
    return {line["id"]: line for line in lines}


def _expected_references(served: dict[str, Any], *groups: str) -> dict[str, float]:
    return {line: served[part][key] for line, (part, key) in REFERENCE_LINES.items() if line.split(":")[0] in groups}


def _toggle(browser: Browser, name: str, *, on: bool) -> None:
    box = browser.find(f"#toggle-{name}")
    if box.is_selected() != on:
        box.click()
    assert box.is_selected() == on


def _check_reference_lines(browser: Browser, served: dict[str, Any]) -> None:
    """Each toggle adds one line per served pivot / POC / VAH / VAL at its price, and removes them again."""
    for pivots, profile in ((True, True), (True, False), (False, True), (False, False)):
        _toggle(browser, "pivots", on=pivots)
        _toggle(browser, "profile", on=profile)
        shown = ("pivot",) * pivots + ("profile",) * profile
        drawn = _drawn_references(browser)
        assert {name: line["price"] for name, line in drawn.items()} == _expected_references(served, *shown)
        assert all(
            line["lineStyle"] == (DASHED if name.startswith("pivot") else DOTTED) for name, line in drawn.items()
        )
        assert len(_drawn_levels(browser)) == len(served["levels"])  # the served levels stay drawn


def _marked_calls(deployment: Deployment, candles: dict[str, Any]) -> int:
    """The symbol's past BUY/SELL calls at the default horizon whose entry candle is on the chart."""
    calls = deployment.get("/api/v1/track-record/symbols/BTC")["calls"]
    opens = {candle["open_time_ms"] for candle in candles["candles"]}
    hour_ms = 3_600_000
    return sum(
        1
        for call in calls
        if call["label"] != "HOLD" and int(datetime.fromisoformat(call["as_of"]).timestamp() * 1000) - hour_ms in opens
    )


def test_the_symbol_page_draws_the_candles_and_one_line_per_level(browser: Browser, deployment: Deployment) -> None:
    browser.show("recommendations", "recommendations")
    renders = browser.renders()
    browser.find("#recommendations-table tr[data-symbol='BTC/USDT'] a").click()
    browser.wait_view("symbol", after_renders=renders)
    served = deployment.get("/api/v1/support-levels/BTC")["support_levels"]
    candles = deployment.get("/api/v1/candles/BTC", timeframe="1h", limit=500)
    drawn = _drawn_levels(browser)
    assert [line["price"] for line in drawn] == [level["price"] for level in served["levels"]] and drawn
    assert [line["lineWidth"] for line in drawn] == [
        min(4, 1 + int(4 * level["strength"])) for level in served["levels"]
    ]
    tiers = {served["aggressive_support"]: "aggressive support", served["moderate_resistance"]: "moderate resistance"}
    assert all(any(line["price"] == price and name in line["title"] for line in drawn) for price, name in tiers.items())
    assert browser.find("#price-chart").get_attribute("data-candles") == str(candles["count"])
    assert browser.find("#price-chart").get_attribute("data-markers") == str(_marked_calls(deployment, candles))
    _wait_ink(browser, "#price-chart", 20_000)  # candles, volume and lines, not a blank canvas
    assert served["pivots"] and served["volume_profile"]
    _check_reference_lines(browser, served)
    table = {row.get_attribute("data-reference"): row for row in browser.find_all("#reference-prices tr")}
    assert {name: float(row.get_attribute("data-price") or "nan") for name, row in table.items()} == (
        _expected_references(served, "pivot", "profile")
    )
    _toggle(browser, "pivots", on=True)
    renders = browser.renders()
    browser.find(".tabs a:nth-child(2)").click()  # 1d: the toggles stay as they were
    browser.wait_view("symbol", after_renders=renders)
    daily = deployment.get("/api/v1/candles/BTC", timeframe="1d", limit=500)
    assert browser.find("#price-chart").get_attribute("data-candles") == str(daily["count"])
    assert len(_drawn_levels(browser)) == len(served["levels"])
    assert set(_drawn_references(browser)) == set(_expected_references(served, "pivot"))
    assert browser.console_problems() == []


def test_overview_and_track_record_show_the_apis_figures(browser: Browser, deployment: Deployment) -> None:
    browser.show("", "overview")
    market = deployment.get("/api/v1/market-status")
    gauge = browser.find("[data-testid=sentiment] svg").get_attribute("aria-label") or ""
    assert gauge == f"sentiment: {round(market['market_status']['details']['sentiment_index'])} of 100"
    assert market["run_id"][:12] in browser.find("main table").text
    assert not browser.find_all("[data-testid=stale-banner]")  # the runs are fresh
    browser.show("track-record", "track-record")
    summary = deployment.get("/api/v1/track-record")
    runs = deployment.get("/api/v1/track-record/runs", limit=200)["runs"]
    assert summary["runs_scored"] >= SCORED_RUNS
    with_ic = {run["as_of"] for run in runs if run["ic"] is not None}
    assert browser.find("#ic-chart").get_attribute("data-runs") == str(len(with_ic))
    _wait_ink(browser, "#ic-chart", 2_000)
    assert len(browser.find_all("#label-outcomes svg rect")) >= 2
    assert browser.console_problems() == []


@pytest.mark.parametrize("width", WIDTHS)
def test_every_view_fits_and_is_pictured(browser: Browser, width: int, tmp_path: Path) -> None:
    browser.open()  # a fresh page: the chart toggles at their defaults (the key is still in this tab's session)
    browser.wait_view("overview")
    browser.resize(width)
    for view, route in VIEWS.items():
        browser.show(route, view)
        overflow = browser.js("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{view} at {width} px is {overflow} px too wide"
        if browser.find_all(".chart"):
            _wait_ink(browser, ".chart", 1_000)
        picture = browser.screenshot(tmp_path / f"{view}-{width}.png")
        assert picture.stat().st_size > 10_000
        target = os.environ.get("DASHBOARD_SCREENSHOTS_TO")
        if target and picture.name in README_PICTURES:
            shutil.copyfile(picture, REPO_ROOT / target / README_PICTURES[picture.name])
    browser.resize(1280)
    assert browser.console_problems() == []


def test_the_key_is_never_in_a_url_a_cookie_or_local_storage(browser: Browser, deployment: Deployment) -> None:
    urls: list[str] = browser.js("return performance.getEntriesByType('resource').map(e => e.name)")
    assert any("/api/v1/candles/" in url for url in urls)
    assert not [url for url in [*urls, browser.driver.current_url] if deployment.key in url]
    assert browser.driver.get_cookies() == [] and browser.js("return window.localStorage.length") == 0
    assert browser.js("return window.sessionStorage.getItem('dantaro.apiKey')") == deployment.key


def test_a_new_run_refreshes_the_open_view(browser: Browser, deployment: Deployment) -> None:
    browser.show("recommendations", "recommendations")
    before = deployment.get("/api/v1/recommendations", top_n=100)["run_id"]
    renders = browser.renders()
    published = run_dantaro(["worker", "--once"], deployment.env, timeout_s=180)
    assert published.returncode == 0, published.stderr[-2000:]
    answers: list[Any] = []

    def served() -> bool:  # this API process re-checks the current run at most once a second
        answers.append(deployment.get("/api/v1/recommendations", top_n=100))
        return bool(answers[-1]["run_id"] != before)

    wait_for(served, timeout_s=10, what="the new run in the API")
    after = answers[-1]
    browser.wait_view("recommendations", after_renders=renders, timeout_s=40)  # polled every 5-15 s
    assert after["run_id"] in browser.find("#run-info").text
    assert _table_symbols(browser) == [row["symbol"] for row in after["recommendations"]]
    assert browser.console_problems() == []
