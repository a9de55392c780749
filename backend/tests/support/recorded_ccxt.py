"""ccxt's real exchange classes with only the socket replaced: recorded responses in each exchange's own JSON shape.

``RecordedHttp`` overrides ccxt's low-level ``fetch`` and then does what ccxt's own ``fetch`` does with a response
(``on_rest_response``, ``handle_errors``, ``handle_http_status_code``), so request building, parsing, ordering and
error mapping are ccxt's real code. Routes are keyed by URL path; ``failures`` are served first, in order.
Fixtures: ``fixtures/exchange`` (see its README); ``NOW_MS`` is the server time they were recorded at (epoch ms).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import ccxt.async_support as ccxt_async

from app.domain import Candle
from app.exchange import CcxtSource, RetryPolicy
from tests.support.paths import EXCHANGE_FIXTURES_DIR

NOW_MS: int = json.loads((EXCHANGE_FIXTURES_DIR / "server_now.json").read_text())["now_ms"]
SECRET_OPTIONS = {"apiKey": "key-do-not-log-123", "secret": "secret-do-not-log-456"}


def fixture(name: str) -> Any:
    """The parsed JSON of one recorded response under ``fixtures/exchange``."""
    return json.loads((EXCHANGE_FIXTURES_DIR / name).read_text())


@dataclass
class Reply:
    """One HTTP response as the exchange sent it."""

    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


def ok(payload: Any) -> Reply:
    """A 200 JSON reply of ``payload``."""
    return Reply(200, json.dumps(payload), {"Content-Type": "application/json"})


Route = Callable[[dict[str, str]], Reply]


class RecordedHttp:
    """ccxt's async ``fetch`` with the network replaced by routes keyed by URL path."""

    def __init__(self, config: dict[str, Any], routes: dict[str, Route]) -> None:
        super().__init__(config)  # type: ignore[call-arg]
        self.config = config
        self.routes = routes
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.failures: list[Reply] = []  # served first, in order
        self.closed = False

    async def fetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        self.requests.append((parts.path, query))
        route = self.routes.get(parts.path)
        reply = self.failures.pop(0) if self.failures else route(query) if route else Reply(404, "Not Found")
        ex: Any = self
        text = ex.on_rest_response(reply.status, "", url, method, reply.headers, reply.body, headers, body)
        parsed = ex.parse_json(text)
        ex.last_response_headers = reply.headers
        ex.handle_errors(reply.status, "", url, method, reply.headers, text, parsed, headers, body)
        ex.handle_http_status_code(reply.status, "", url, method, text)
        return parsed

    async def close(self) -> None:
        self.closed = True
        await super().close()  # type: ignore[misc]


class FakeUpbit(RecordedHttp, ccxt_async.upbit):  # type: ignore[misc]
    """ccxt's Upbit on recorded responses."""


class FakeBinance(RecordedHttp, ccxt_async.binance):  # type: ignore[misc]
    """ccxt's Binance on recorded responses."""


class FakeBithumb(RecordedHttp, ccxt_async.bithumb):  # type: ignore[misc]
    """ccxt's Bithumb on recorded responses."""


class FakeOkx(RecordedHttp, ccxt_async.okx):  # type: ignore[misc]
    """ccxt's OKX on recorded responses."""


FAKES: dict[str, type[RecordedHttp]] = {
    "upbit": FakeUpbit,
    "binance": FakeBinance,
    "bithumb": FakeBithumb,
    "okx": FakeOkx,
}


def upbit_candles(newest_first: list[dict[str, Any]], counts: list[int]) -> Route:
    """Upbit's candle endpoint: newest first, at most 200, strictly before ``to`` when given."""

    def serve(query: dict[str, str]) -> Reply:
        count = int(query.get("count", "200"))
        counts.append(count)
        to_ms = upbit_ms(query["to"]) if "to" in query else None
        rows = [c for c in newest_first if query["market"] == c["market"]]
        rows = [c for c in rows if to_ms is None or upbit_ms(c["candle_date_time_utc"]) < to_ms]
        return ok(rows[: min(count, 200)])

    return serve


def upbit_ms(text: str) -> int:
    """Epoch ms of Upbit's candle time (UTC when no zone is given)."""
    moment = datetime.fromisoformat(text if text.endswith("Z") or "+" in text else text + "Z")
    return int(moment.timestamp() * 1000)


def make_source(
    fake: type[RecordedHttp], routes: dict[str, Route], exchange_id: str, quote: str, options: dict[str, Any]
) -> tuple[CcxtSource, RecordedHttp]:
    """A CcxtSource on a ``fake`` exchange serving ``routes``, and that exchange (one attempt per call)."""
    made: list[RecordedHttp] = []

    def factory(config: dict[str, Any]) -> RecordedHttp:
        made.append(fake(config, routes))
        return made[0]

    source = CcxtSource(
        exchange_id,
        quote=quote,
        options=options,
        timeframes=["1h", "1d"],
        exchange_factory=factory,
        retry_policy=RetryPolicy(max_attempts=1),  # errors surface on the first failure here; see test_exchange_retry
    )
    return source, made[0]


def upbit_candle(raw: dict[str, Any]) -> Candle:
    """Our candle of one recorded Upbit candle."""
    return Candle(
        open_time_ms=upbit_ms(raw["candle_date_time_utc"]),
        open=raw["opening_price"],
        high=raw["high_price"],
        low=raw["low_price"],
        close=raw["trade_price"],
        volume=raw["candle_acc_trade_volume"],
    )


def upbit_shaped_routes(folder: str, counts: list[int]) -> dict[str, Route]:
    """Routes of an Upbit-shaped API (Upbit, and Bithumb's v1 API that mirrors it) from ``fixtures/<folder>/``."""
    tickers = fixture(f"{folder}/ticker.json")
    return {
        "/v1/market/all": lambda q: ok(fixture(f"{folder}/market_all.json")),
        "/v1/ticker": lambda q: ok([t for t in tickers if t["market"] in q["markets"].split(",")]),
        "/v1/candles/minutes/60": upbit_candles(fixture(f"{folder}/candles_minutes_60.json"), counts),
        "/v1/candles/days": upbit_candles(fixture(f"{folder}/candles_days.json"), counts),
    }
