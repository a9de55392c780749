"""Universe rules: exclusion pattern, minimum volume, volume derived from candles, minimum listed history, refresh."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from app.config import Settings
from app.domain import Candle, Market, Ticker
from app.exchange import ExchangeUnavailable
from app.worker.universe import Universe, UniverseRules, select_universe

DAY_MS = 86_400_000
NOW_MS = 1_000 * DAY_MS + DAY_MS // 2
PATTERN = Settings(_env_file=None).universe_exclude_pattern


def market(base: str, quote: str = "KRW") -> Market:
    return Market(f"{base}/{quote}", base, quote)


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
    chosen = select_universe([market(base)], {}, quote="KRW", size=5, exclude_pattern=PATTERN)
    assert (chosen == []) is excluded


def test_minimum_volume_and_derived_volume_rank_the_rest() -> None:
    markets = [market(b) for b in ("AAA", "BBB", "CCC", "DDD")]
    tickers = {
        "AAA/KRW": Ticker("AAA/KRW", last=1.0, timestamp_ms=0, quote_volume_24h=50.0),
        "BBB/KRW": Ticker("BBB/KRW", last=2.0, timestamp_ms=0, base_volume_24h=100.0),  # 200 from base × last
        "CCC/KRW": Ticker("CCC/KRW", last=1.0, timestamp_ms=0),  # no volume: derived below
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
        return [market(s.split("/")[0]) for s in self.history_days]

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
