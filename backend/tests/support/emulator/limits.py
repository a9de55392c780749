"""The emulated exchange's request limits, storms and error bodies (see ``tests.support.emulator``).

- ``RateLimits``: the exchange's own limit, counted on a clock seam (``clock_s``: the wall clock, or a test's
  ``ManualClock`` shared with the worker so that waiting is instant): Upbit counts each group (markets, tickers,
  candles) per second from the group's first request, 10 a second, failed requests not counted
  (docs.upbit.com/v1.4.0/docs/user-request-guide) and reports ``Remaining-Req: group=…; min=1800; sec=N``; Binance
  counts request weight per clock minute, 6000, and reports ``X-MBX-USED-WEIGHT-1M`` (klines 2, 24hr tickers 2/40/80
  by symbol count, exchangeInfo 20: the endpoints' documented weights). A request over the limit gets a 429.
- ``RateStorm``: a share of responses fail (429 with Retry-After, or 500/502/503), chosen by a stable hash of the
  request and how often it was seen, so the same requests fail in every run whatever order they arrive in.
- ``error_body``: each exchange's documented error shape: Upbit ``{"error": {"name", "message"}}`` (429:
  ``too_many_requests``; Upbit names no 418 or 5xx error, so those carry placeholder names), Binance
  ``{"code", "msg"}`` (-1003 rate limit and "IP banned until", -1001 internal error).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

UPBIT_GROUPS = {"/v1/market/all": "market", "/v1/ticker": "ticker"}  # anything else: candles
BINANCE_WEIGHTS = {"/api/v3/klines": 2, "/api/v3/exchangeInfo": 20}


def error_body(kind: str, status: int, *, banned_until_ms: int = 0) -> Any:
    """The exchange's own JSON error body for a 418, a 429 or a 5xx."""
    if kind == "upbit":
        name, message = {
            418: ("too_many_requests", "Too many API requests. This IP is blocked for a while."),
            429: ("too_many_requests", "Too many API requests."),
        }.get(status, ("server_error", "Internal server error."))
        return {"error": {"name": name, "message": message}}
    if status == 418:
        return {
            "code": -1003,
            "msg": f"Way too much request weight used; IP banned until {banned_until_ms}. "
            "Please use WebSocket Streams for live updates to avoid bans.",
        }
    if status == 429:
        return {
            "code": -1003,
            "msg": "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. "
            "Please use WebSocket Streams for live updates to avoid polling the API.",
        }
    return {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}


def request_key(path: str, query: dict[str, str]) -> str:
    """One text per distinct request (path and sorted query)."""
    return path + "?" + "&".join(f"{k}={v}" for k, v in sorted(query.items()))


@dataclass
class RateStorm:
    """``share`` of the responses fail: half 429 (``Retry-After``), half 500/502/503; see the module docstring."""

    share: float = 0.25
    retry_after_s: int = 1
    seen: dict[str, int] = field(default_factory=dict)
    served: int = 0
    failed: int = 0
    failing: set[str] = field(default_factory=set)  # requests whose latest answer was an error
    statuses: Counter[int] = field(default_factory=Counter)

    def status(self, path: str, query: dict[str, str]) -> int | None:
        """The error status this request gets, or None (served). Called under the emulator's lock."""
        key = request_key(path, query)
        attempt = self.seen.get(key, 0)
        self.seen[key] = attempt + 1
        self.served += 1
        digest = hashlib.sha256(f"{key}#{attempt}".encode()).digest()
        if digest[0] >= self.share * 256:
            self.failing.discard(key)
            return None
        self.failed += 1
        self.failing.add(key)
        status = 429 if digest[1] % 2 == 0 else (500, 502, 503)[digest[2] % 3]
        self.statuses[status] += 1
        return status


@dataclass
class RateLimits:
    """The exchange's request limit (see the module docstring); ``admit`` counts a request and says if it may pass."""

    kind: str  # "upbit" | "binance"
    clock_s: Callable[[], float] = time.time
    per_second: int = 10  # Upbit, each group
    weight_per_minute: int = 6000  # Binance
    used_at_start: int = 0  # Binance: weight other clients of this IP used in the first minute
    windows: dict[str, tuple[float, int]] = field(default_factory=dict)  # budget -> (window start, used)
    limited: int = 0  # requests refused with a 429

    def admit(self, path: str, query: dict[str, str]) -> tuple[bool, dict[str, str]]:
        """Count the request; (allowed, the budget headers of its response). Called under the emulator's lock."""
        now_s = self.clock_s()
        if self.kind == "upbit":
            return self._upbit(UPBIT_GROUPS.get(path, "candles"), now_s)
        return self._binance(binance_weight(path, query), now_s)

    def retry_after_s(self) -> int:
        """Seconds until the current window ends (the 429's Retry-After)."""
        now_s = self.clock_s()
        if self.kind == "upbit":
            return 1
        return max(1, math.ceil((math.floor(now_s / 60) + 1) * 60 - now_s))

    def _upbit(self, group: str, now_s: float) -> tuple[bool, dict[str, str]]:
        start_s, used = self.windows.get(group, (-math.inf, 0))
        if now_s >= start_s + 1:
            start_s, used = now_s, 0
        allowed = used < self.per_second
        used += 1 if allowed else 0
        self.windows[group] = (start_s, used)
        self.limited += 0 if allowed else 1
        return allowed, {"Remaining-Req": f"group={group}; min=1800; sec={self.per_second - used}"}

    def _binance(self, weight: int, now_s: float) -> tuple[bool, dict[str, str]]:
        minute = math.floor(now_s / 60) * 60.0
        start_s, used = self.windows.get("ip", (minute, self.used_at_start))
        if start_s != minute:
            start_s, used = minute, 0
        allowed = used + weight <= self.weight_per_minute
        used += weight if allowed else 0
        self.windows["ip"] = (start_s, used)
        self.limited += 0 if allowed else 1
        return allowed, {"X-MBX-USED-WEIGHT-1M": str(used)}


def binance_weight(path: str, query: dict[str, str]) -> int:
    """The documented request weight of a Binance call."""
    if path == "/api/v3/ticker/24hr":
        count = len(json.loads(query["symbols"])) if "symbols" in query else 1000
        return 2 if count <= 20 else 40 if count <= 100 else 80
    return BINANCE_WEIGHTS.get(path, 1)
