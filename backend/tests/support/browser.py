"""Headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven through selenium, for the dashboard tests.

Never downloads a browser or a driver: the binaries are the Debian ones (``.ci/run`` installs them when missing);
without them the tests skip, or fail under ``DANTARO_REQUIRE_SERVICES=1``. Console messages are read after each
step: an error or warning there (a script error, a CSP violation, a failed load) fails the test that caused it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.services import unavailable

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL_HINT = "apt-get install chromium chromium-driver"
HEIGHT = 900
BAD_LEVELS = {"SEVERE", "WARNING"}


class Browser:
    """One headless Chromium window on the dashboard."""

    def __init__(self, driver: webdriver.Chrome, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url
        self.console: list[dict[str, Any]] = []  # every console entry so far

    def open(self, path: str = "/dashboard") -> None:
        """Load ``path`` of the API."""
        self.driver.get(self.base_url + path)

    def js(self, script: str, *args: Any) -> Any:
        """Run ``script`` in the page and return its value."""
        return self.driver.execute_script(script, *args)

    def find(self, css: str) -> WebElement:
        """The first element matching ``css``."""
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[WebElement]:
        """Every element matching ``css``."""
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def wait(self, condition: str, *, timeout_s: float = 30.0, what: str = "") -> Any:
        """Wait until the JavaScript expression ``condition`` is truthy; returns its value."""
        try:
            return WebDriverWait(self.driver, timeout_s, poll_frequency=0.05).until(
                lambda driver: driver.execute_script(f"return ({condition})")
            )
        except WebDriverException as exc:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what or condition}") from exc

    def wait_view(self, view: str, *, after_renders: int = 0, timeout_s: float = 30.0) -> None:
        """Wait until ``view`` is rendered (the shell's data-state ready), after more than ``after_renders``."""
        self.wait(
            f"document.body.dataset.state === 'ready' && document.body.dataset.view === {json.dumps(view)}"
            f" && Number(document.body.dataset.renders) > {after_renders}",
            timeout_s=timeout_s,
            what=f"the {view} view",
        )

    def renders(self) -> int:
        """How many views the shell has rendered so far."""
        return int(self.js("return Number(document.body.dataset.renders || 0)"))

    def show(self, route: str, view: str) -> None:
        """Navigate to ``#/route`` as a link would and wait for ``view`` to be rendered anew (the same route again
        renders again too, as a reload of the view)."""
        renders = self.renders()
        self.js(
            "const target = arguments[0];"
            "if (window.location.hash === target) window.dispatchEvent(new HashChangeEvent('hashchange'));"
            "else window.location.hash = target;",
            "#/" + route,
        )
        self.wait_view(view, after_renders=renders)

    def new_console(self) -> list[dict[str, Any]]:
        """The console entries since the last call."""
        entries: list[dict[str, Any]] = self.driver.get_log("browser")
        self.console.extend(entries)
        return entries

    def console_problems(self, *, allowed: tuple[str, ...] = ()) -> list[str]:
        """New errors and warnings in the console, except those containing one of ``allowed``."""
        return [
            entry["message"]
            for entry in self.new_console()
            if entry["level"] in BAD_LEVELS and not any(text in entry["message"] for text in allowed)
        ]

    def resize(self, width: int, height: int = HEIGHT) -> None:
        """Set the viewport's size (headless: the window is the viewport)."""
        self.driver.set_window_size(width, height)
        self.wait(f"window.innerWidth === {width}", what=f"a {width} px wide viewport", timeout_s=5)

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page at the current width (the window grows to the page's height, then returns)."""
        width = int(self.js("return window.innerWidth"))
        self.driver.execute_script("window.scrollTo(0, 0)")
        self.move_pointer_away()
        height = int(self.js("return document.documentElement.scrollHeight"))
        self.resize(width, max(HEIGHT, height))
        time.sleep(0.3)  # the charts re-measure on resize and draw on the next animation frames
        self.driver.save_screenshot(str(path))
        self.resize(width)
        return path

    def move_pointer_away(self) -> None:
        """Put the pointer on the page header, so no chart shows a crosshair."""
        webdriver.ActionChains(self.driver).move_to_element(self.find("header")).perform()

    def canvas_ink(self, css: str) -> int:
        """Pixels of the canvases inside ``css`` that differ from the first pixel (the background)."""
        return int(
            self.js(
                """
                let ink = 0;
                for (const canvas of document.querySelectorAll(arguments[0] + ' canvas')) {
                  if (!canvas.width || !canvas.height) continue;
                  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
                  for (let i = 4; i < data.length; i += 4) {
                    const differs = data[i] !== data[0] || data[i + 1] !== data[1] || data[i + 2] !== data[2];
                    if (data[i + 3] && differs) ink++;
                  }
                }
                return ink;
                """,
                css,
            )
        )


def chromium_options(width: int) -> webdriver.ChromeOptions:
    """Headless Chromium as the tests run it: no sandbox (root in CI), no GPU, console captured."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--window-size={width},{HEIGHT}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return options


@contextmanager
def chromium(base_url: str, *, width: int = 1280) -> Iterator[Browser]:
    """A headless Chromium on ``base_url`` (skips, or fails under DANTARO_REQUIRE_SERVICES=1, without Chromium)."""
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not binary.exists():
            unavailable(f"{binary} is missing ({INSTALL_HINT})")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=chromium_options(width))
    try:
        yield Browser(driver, base_url)
    finally:
        driver.quit()
