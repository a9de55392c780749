"""A loopback HTTP server emulating the public market-data API of Upbit or Binance, for tests and the benchmark.

ccxt reaches it through ``DANTARO_EXCHANGE_OPTIONS`` URL overrides (``Emulator.ccxt_options()``), so its real
HTTP stack (aiohttp), request building, parsing and error mapping are exercised.

What it serves (``now_ms`` is the emulator's clock: ``fixed_now_ms`` when a test sets it, else the wall clock;
``live()`` shifts the history by whole days so that its last hour is forming now):
- candles: the bundled real Binance candles (``app/data/binance-spot``, shifted by ``shift_ms``), prices unchanged
  for both shapes (the Upbit emulation labels them KRW); synthetic names (``aliases``) re-use a real series
  under another name;
- Upbit: ``/v1/market/all``, ``/v1/ticker``, ``/v1/candles/minutes/60`` and ``/v1/candles/days`` — newest first,
  at most 200, strictly before ``to``; Binance: ``/api/v3/exchangeInfo``, ``/api/v3/ticker/24hr``,
  ``/api/v3/klines`` — ascending from ``startTime``, at most 1000;
- the candle forming at ``now_ms`` with different values from its final ones (close = open, half the volume), so a
  stored forming candle shows up as a mismatch; ``gaps`` removes candles (the exchange had no trades);
- ``faults``: the next matching requests get a 429 with ``Retry-After``, a 500, or a slow reply; a fault with
  ``ban_s`` bans the client: every request gets a 418 until the ban ends on ``clock_s`` (with ``Retry-After`` when
  the fault has one, and Binance's "IP banned until" body);
- ``storm``: a rate-limit and server-error storm: ``Storm`` (every distinct request fails the first time it is seen,
  a 429 with ``Retry-After`` or a 500, alternating, and requests naming a ``down`` text always fail) or
  ``RateStorm`` (a share of all responses fail; ``limits.py``);
- ``limits``: the exchange's own request limit with its budget headers (``RateLimits``, ``limits.py``);
- errors carry the exchange's own JSON error bodies (``limits.error_body``).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from app.domain import Candle, timeframe_ms
from tests.support.candles import bundled_candles
from tests.support.emulator.limits import RateLimits, RateStorm, error_body, request_key

DAY_MS = 86_400_000
Row = tuple[int, float, float, float, float, float]


@dataclass
class Fault:
    """Served instead of (``status``) or before (``delay_s``) the next request whose path starts with ``path``."""

    path: str
    status: int | None = None
    retry_after_s: int | None = None
    delay_s: float = 0.0
    ban_s: float | None = None  # a 418 that bans the client for this long (every request answered 418 meanwhile)


@dataclass
class Storm:
    """Faults by request (path and query): each distinct request fails once, those holding a ``down`` text always."""

    down: tuple[str, ...] = ()  # e.g. "ETH" (its candle requests), "ticker" (the tickers endpoint)
    retry_after_s: int = 1
    seen: set[str] = field(default_factory=set)
    failed: int = 0

    def status(self, path: str, query: dict[str, str]) -> int | None:
        """The error status this request gets, or None (served). Called under the emulator's lock."""
        key = request_key(path, query)
        if not any(text in key for text in self.down) and key in self.seen:
            return None
        self.seen.add(key)
        self.failed += 1
        return 429 if self.failed % 2 else 500


def load_rows(base: str, timeframe: str) -> list[Row]:
    """The bundled ``BASE_USDT`` candles of one timeframe as rows, ascending."""
    return [(c.open_time_ms, c.open, c.high, c.low, c.close, c.volume) for c in bundled_candles(base, timeframe)]


def iso(ms: int) -> str:
    """Upbit's candle time format (UTC, no zone)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def parse_ms(text: str) -> int:
    """Milliseconds of an ISO 8601 time (UTC when no zone is given)."""
    moment = datetime.fromisoformat(text.replace(" ", "T"))
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)


@dataclass
class Emulator:
    """The emulated exchange's data, clock, faults and request log; ``start()`` serves it on 127.0.0.1."""

    kind: str  # "upbit" | "binance"
    bases: list[str]
    fixed_now_ms: int | None = None
    shift_ms: int = 0  # added to every open time (a whole number of days)
    aliases: dict[str, str] = field(default_factory=dict)  # synthetic base → real base whose series it re-uses
    gaps: set[tuple[str, str, int]] = field(default_factory=set)  # (base, timeframe, open_ms) removed
    faults: list[Fault] = field(default_factory=list)
    storm: Storm | RateStorm | None = None
    limits: RateLimits | None = None
    clock_s: Callable[[], float] = time.time  # the clock of bans
    banned_until_s: float = -math.inf
    ban_retry_after: bool = False  # the ban's 418s carry Retry-After
    ban_replies: int = 0  # 418s served
    candle_delay_s: float = 0.0  # added to every candle request (a slow exchange, e.g. to interrupt a backfill)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    _rows: dict[tuple[str, str], list[Row]] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def live(cls, kind: str, bases: list[str], **kwargs: Any) -> Emulator:
        """An emulator on the wall clock, its hourly history ending with the hour forming now (shifted by days)."""
        last_open_ms = load_rows(kwargs.get("aliases", {}).get(bases[0], bases[0]), "1h")[-1][0]
        shift_ms = -(-(time.time_ns() // 1_000_000 - last_open_ms) // DAY_MS) * DAY_MS
        return cls(kind, bases, shift_ms=shift_ms, **kwargs)

    @property
    def now_ms(self) -> int:
        """The emulator's now."""
        return self.fixed_now_ms if self.fixed_now_ms is not None else time.time_ns() // 1_000_000

    @property
    def quote(self) -> str:
        """KRW for the Upbit shape, USDT for Binance."""
        return "KRW" if self.kind == "upbit" else "USDT"

    def symbol(self, base: str) -> str:
        """The unified symbol of ``base``."""
        return f"{base}/{self.quote}"

    def rows(self, base: str, timeframe: str) -> list[Row]:
        """All source rows of ``base`` (closed or not), gaps removed."""
        key = (base, timeframe)
        if key not in self._rows:
            real = load_rows(self.aliases.get(base, base), timeframe)
            self._rows[key] = [(r[0] + self.shift_ms, *r[1:]) for r in real]
        return [r for r in self._rows[key] if (base, timeframe, r[0]) not in self.gaps]

    def closed(self, base: str, timeframe: str, *, since_ms: int = 0) -> list[Candle]:
        """The candles a correct ingest stores: closed by ``now_ms``, from ``since_ms``, gaps left out."""
        step_ms, now_ms = timeframe_ms(timeframe), self.now_ms
        return [Candle(*r) for r in self.rows(base, timeframe) if since_ms <= r[0] and r[0] + step_ms <= now_ms]

    def visible(self, base: str, timeframe: str) -> list[Row]:
        """What the exchange shows now: closed rows and the forming one (with its partial values)."""
        step_ms, now_ms = timeframe_ms(timeframe), self.now_ms
        shown: list[Row] = []
        for row in self.rows(base, timeframe):
            if row[0] > now_ms:
                break
            forming = row[0] + step_ms > now_ms
            shown.append((row[0], row[1], row[1], row[1], row[1], row[5] / 2) if forming else row)
        return shown

    def ccxt_options(self) -> dict[str, Any]:
        """ccxt config pointing the exchange at this server, with a short timeout and a light rate limit."""
        base = f"http://127.0.0.1:{self.port}"
        public = base if self.kind == "upbit" else f"{base}/api/v3"
        return {"urls": {"api": {"public": public}}, "timeout": 1500, "rateLimit": 1}

    @property
    def port(self) -> int:
        """The port it listens on (after ``start()``)."""
        assert self._server is not None
        return int(self._server.server_address[1])

    def start(self) -> Emulator:
        """Serve in a daemon thread on a random loopback port."""
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                emulator.handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def calls(self, prefix: str = "") -> int:
        """How many requests were received whose path starts with ``prefix``."""
        with self._lock:
            return sum(1 for path, _ in self.requests if path.startswith(prefix))

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        """Serve one request: a ban, a matching fault or the storm first, then the limit, then the route."""
        parts = urlsplit(request.path)
        query = dict(parse_qsl(parts.query))
        headers: dict[str, str] = {}
        with self._lock:
            self.requests.append((parts.path, query))
            fault = None if parts.path.startswith("/_emulator") else self._fault(parts.path, query)
            if fault is None and self.limits is not None and not parts.path.startswith("/_emulator"):
                allowed, headers = self.limits.admit(parts.path, query)
                fault = None if allowed else Fault(parts.path, 429, retry_after_s=self.limits.retry_after_s())
        delay_s = (fault.delay_s if fault is not None else 0.0) + (
            self.candle_delay_s if "candles" in parts.path or "klines" in parts.path else 0.0
        )
        if delay_s:
            time.sleep(delay_s)
        if fault is not None and fault.status is not None:
            if fault.retry_after_s is not None:
                headers["Retry-After"] = str(fault.retry_after_s)
            until_ms = int(self.banned_until_s * 1000) if fault.status == 418 else 0
            return reply(request, fault.status, error_body(self.kind, fault.status, banned_until_ms=until_ms), headers)
        if parts.path == "/_emulator/now":  # control: set the clock (used by the benchmark across processes)
            self.fixed_now_ms = int(query["ms"])
            return reply(request, 200, {"now_ms": self.fixed_now_ms})
        try:
            payload = self.route(parts.path, query)
        except KeyError as exc:
            return reply(request, 404, {"error": {"name": "not_found", "message": str(exc)}})
        reply(request, 200, payload, headers)

    def _fault(self, path: str, query: dict[str, str]) -> Fault | None:
        """What goes wrong with this request (under the lock): the ban, the next matching fault, or the storm."""
        ban_left_s = self.banned_until_s - self.clock_s()
        if ban_left_s > 0:
            self.ban_replies += 1
            return Fault(path, 418, retry_after_s=math.ceil(ban_left_s) if self.ban_retry_after else None)
        fault = next((f for f in self.faults if path.startswith(f.path)), None)
        if fault is not None:
            self.faults.remove(fault)
            if fault.ban_s is not None:
                self.banned_until_s = self.clock_s() + fault.ban_s
                self.ban_retry_after, self.ban_replies = fault.retry_after_s is not None, self.ban_replies + 1
            return fault
        storm = self.storm
        status = None if storm is None else storm.status(path, query)
        if storm is None or status is None:
            return None
        return Fault(path, status, retry_after_s=storm.retry_after_s if status == 429 else None)

    def route(self, path: str, query: dict[str, str]) -> Any:
        """The JSON body for a path, in the emulated exchange's shape."""
        from tests.support.emulator.shapes import binance_route, upbit_route

        return (upbit_route if self.kind == "upbit" else binance_route)(self, path, query)


def reply(request: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
    """Write a JSON response."""
    body = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
    request.send_response(status)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        request.send_header(name, value)
    request.end_headers()
    try:
        request.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):  # the client timed out first (the slow-response fault)
        return


def synthetic_bases(count: int, *, real: Iterable[str]) -> dict[str, str]:
    """``count`` synthetic base names (``S0001``…) mapped round-robin onto the given real bases."""
    reals = list(real)
    return {f"S{i:04d}": reals[i % len(reals)] for i in range(count)}
