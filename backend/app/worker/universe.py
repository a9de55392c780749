"""Universe selection: which of an exchange's markets one run analyses.

Pure function over domain objects. Ranking is by 24h quote volume; a ticker without quote volume falls back to
``last * base volume``; a market without a ticker ranks last. Ties break by symbol so the order is deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from app.domain import Market, Ticker


def quote_volume(ticker: Ticker | None) -> float:
    """A ticker's 24h quote volume, derived from base volume when the exchange does not report it."""
    if ticker is None:
        return 0.0
    if ticker.quote_volume_24h is not None:
        return ticker.quote_volume_24h
    if ticker.base_volume_24h is not None:
        return ticker.base_volume_24h * ticker.last
    return 0.0


def select_universe(markets: Sequence[Market], tickers: Mapping[str, Ticker], *, quote: str, size: int) -> list[str]:
    """The ``size`` active spot markets in ``quote`` with the highest 24h quote volume."""
    eligible = [m.symbol for m in markets if m.active and m.spot and m.quote.upper() == quote.upper()]
    ranked = sorted(eligible, key=lambda symbol: (-quote_volume(tickers.get(symbol)), symbol))
    return ranked[:size]
