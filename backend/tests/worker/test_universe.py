"""Universe selection and rules: active spot markets in the quote currency ranked by 24h quote volume, exclusion
pattern, minimum volume, volume derived from candles, minimum listed history, refresh."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from app.config import Settings
from app.domain import Candle, Market, Ticker
from app.exchange import ExchangeUnavailable
from app.worker.universe import Universe, UniverseRules, quote_volume, select_universe

DAY_MS = 86_400_000
NOW_MS = 1_000 * DAY_MS + DAY_MS // 2
PATTERN = Settings(_env_file=None).universe_exclude_pattern


def market(symbol: str, *, active: bool = True, spot: bool = True) -> Market:
    base, quote = symbol.split("/")
    return Market(symbol=symbol, base=base, quote=quote, active=active, spot=spot)


def ticker(symbol: str, *, quote_volume: float | None, base_volume: float | None = None, last: float = 2.0) -> Ticker:
    return Ticker(symbol=symbol, last=last, timestamp_ms=0, quote_volume_24h=quote_volume, base_volume_24h=base_volume)


@pytest.mark.parametrize(
    ("ticker_24h", "expected"),
    [
        (None, 0.0),
        (ticker("A/KRW", quote_volume=10.0), 10.0),
        (ticker("A/KRW", quote_volume=None, base_volume=5.0, last=3.0), 15.0),
        (ticker("A/KRW", quote_volume=None, base_volume=None), 0.0),
    ],
)
def test_quote_volume(ticker_24h: Ticker | None, expected: float) -> None:
    assert quote_volume(ticker_24h) == expected


def test_select_universe_ranks_filters_and_caps() -> None:
    markets = [
        market("BTC/KRW"),
        market("ETH/KRW"),
        market("XRP/KRW"),
        market("DOGE/KRW", active=False),
        market("BTC/USDT"),
        market("SOL/KRW", spot=False),
    ]
    tickers = {
        "BTC/KRW": ticker("BTC/KRW", quote_volume=100.0),
        "ETH/KRW": ticker("ETH/KRW", quote_volume=None, base_volume=100.0, last=3.0),
        "XRP/KRW": ticker("XRP/KRW", quote_volume=50.0),
        "DOGE/KRW": ticker("DOGE/KRW", quote_volume=1e9),
        "BTC/USDT": ticker("BTC/USDT", quote_volume=1e9),
    }
    assert select_universe(markets, tickers, quote="KRW", size=10) == ["ETH/KRW", "BTC/KRW", "XRP/KRW"]
    assert select_universe(markets, tickers, quote="krw", size=2) == ["ETH/KRW", "BTC/KRW"]


@pytest.mark.parametrize(
    ("base", "excluded"),
    [
        ("USDT", True),
        ("USDC", True),
        ("DAI", True),
        ("BTCUP", True),
        ("ETHDOWN", True),
        ("BTC3L", True),
        ("ETH5S", True),
        ("BTC", False),
        ("JUP", False),
        ("SUSHI", False),
        ("1INCH", False),
        ("ETHBULL", True),
    ],
)
def test_default_pattern_excludes_stablecoins_and_leveraged_tokens(base: str, excluded: bool) -> None:
    chosen = select_universe([market(f"{base}/KRW")], {}, quote="KRW", size=5, exclude_pattern=PATTERN)
    assert (chosen == []) is excluded


def test_minimum_volume_and_derived_volume_rank_the_rest() -> None:
    markets = [market(f"{b}/KRW") for b in ("AAA", "BBB", "CCC", "DDD")]
    tickers = {
        "AAA/KRW": ticker("AAA/KRW", quote_volume=50.0, last=1.0),
        "BBB/KRW": ticker("BBB/KRW", quote_volume=None, base_volume=100.0),  # 200 from base × last
        "CCC/KRW": ticker("CCC/KRW", quote_volume=None, last=1.0),  # no volume: derived below
    }
    derived = {"CCC/KRW": 120.0}
    chosen = select_universe(markets, tickers, quote="KRW", size=10, min_quote_volume=60.0, derived_volumes=derived)
    assert chosen == ["BBB/KRW", "CCC/KRW"]  # AAA under the minimum, DDD without any volume


class FakeSource:
    exchange_id, quote = "upbit", "KRW"

    def __init__(self, history_days: dict[str, int]) -> None:
        self.history_days = history_days
        self.down = False
        self.probes: list[str] = []

    async def start_cycle(self, *, stored_until_ms: int | None = None) -> int:
        return NOW_MS

    async def load_markets(self) -> list[Market]:
        if self.down:
            raise ExchangeUnavailable("down")
        return [market(symbol) for symbol in self.history_days]

    async def fetch_tickers(self, symbols: Sequence[str]) -> dict[str, Ticker]:
        return {s: Ticker(s, last=1.0, timestamp_ms=NOW_MS, quote_volume_24h=float(len(s))) for s in symbols}

    async def fetch_closed_candles(
        self, symbol: str, timeframe: str, *, since_ms: int | None, limit: int, now_ms: int
    ) -> list[Candle]:
        self.probes.append(symbol)
        days = min(limit, self.history_days[symbol])
        last_ms = now_ms // DAY_MS * DAY_MS - DAY_MS
        return [Candle(last_ms - i * DAY_MS, 1, 1, 1, 1, 1) for i in reversed(range(days))]

    async def close(self) -> None:
        return None


async def test_young_listings_wait_and_history_is_probed_once() -> None:
    source = FakeSource({"LONGER/KRW": 400, "NEW/KRW": 3, "OLD/KRW": 90})
    rules = UniverseRules(quote="KRW", size=10, min_history_days=30)
    universe = Universe(source=source, rules=rules, timeframes=["1h", "1d"])
    assert await universe.ensure(now_ms=NOW_MS) == ["LONGER/KRW", "OLD/KRW"]
    assert await universe.refresh(now_ms=NOW_MS) == ["LONGER/KRW", "OLD/KRW"]
    assert sorted(source.probes) == ["LONGER/KRW", "NEW/KRW", "NEW/KRW", "OLD/KRW"]  # only the young one again
    source.down = True
    assert await universe.refresh(now_ms=NOW_MS) == ["LONGER/KRW", "OLD/KRW"]  # a failed refresh keeps the last
