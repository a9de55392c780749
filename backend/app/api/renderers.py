"""Plain-dict views of a published ``Snapshot``, in the original Dantaro Central light API field names.

Invariants: every payload carries the run's freshness (``generated_at``, ``as_of`` = close time of the last
candle used, ``age_seconds`` = seconds since the run was generated, ``stale`` = age beyond
``Settings.stale_after_s``, ``data_source``); datetimes stay ``datetime`` (UTC) and are rendered by orjson;
scores are in [0, 1], price changes in percent, volumes in the quote currency.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Any, Generic, TypeVar

import orjson

from app.api.responses import dump_json
from app.domain import Level, MarketStatus, Recommendation, Snapshot, SupportLevels

T = TypeVar("T")
View = dict[str, Any]


def freshness_view(snapshot: Snapshot, *, data_source: str, stale_after_s: float, now: datetime) -> View:
    """The provenance fields every data payload carries."""
    age_s = max(0.0, (now - snapshot.generated_at).total_seconds())
    return {
        "cache_timestamp": snapshot.generated_at,
        "generated_at": snapshot.generated_at,
        "data_source": data_source,
        "exchange": snapshot.exchange,
        "run_id": snapshot.run_id,
        "as_of": snapshot.data_as_of,
        "age_seconds": round(age_s, 3),
        "stale": age_s > stale_after_s,
    }


def recommendation_view(rec: Recommendation, *, updated_at: datetime) -> View:
    """One recommendation as the light API reports it."""
    return {
        "symbol": rec.symbol,
        "rank": rec.rank,
        "total_score": rec.total_score,
        "technical_score": rec.technical_score,
        "volume_score": rec.volume_score,
        "volatility_score": rec.volatility_score,
        "risk_score": rec.risk_score,
        "recommendation_strength": rec.label.value,
        "current_price": rec.current_price,
        "price_change_24h": rec.price_change_24h,
        "volume_24h": rec.volume_24h,
        "market_cap": None,
        "analysis_details": rec.details,
        "updated_at": updated_at,
    }


def recommendations_view(snapshot: Snapshot) -> list[View]:
    """All of a run's recommendations, best rank first."""
    ranked = sorted(snapshot.recommendations, key=lambda rec: rec.rank)
    return [recommendation_view(rec, updated_at=snapshot.generated_at) for rec in ranked]


def level_view(level: Level) -> View:
    """One support or resistance price."""
    return {
        "price": level.price,
        "kind": level.kind,
        "strength": level.strength,
        "sources": level.sources,
        "touches": level.touches,
        "last_touched_at": level.last_touched_at,
        "distance_pct": level.distance_pct,
    }


def support_levels_view(levels: SupportLevels, *, updated_at: datetime) -> View:
    """A symbol's three support and resistance tiers plus every level found."""
    return {
        "symbol": levels.symbol,
        "aggressive_support": levels.aggressive_support,
        "moderate_support": levels.moderate_support,
        "conservative_support": levels.conservative_support,
        "aggressive_resistance": levels.aggressive_resistance,
        "moderate_resistance": levels.moderate_resistance,
        "conservative_resistance": levels.conservative_resistance,
        "calculation_method": levels.calculation_method,
        "data_points_count": levels.data_points_count,
        "updated_at": updated_at,
        "levels": [level_view(level) for level in levels.levels],
    }


def market_view(market: MarketStatus, *, updated_at: datetime) -> View:
    """The exchange's market as a whole."""
    return {
        "market_trend": market.market_trend,
        "market_sentiment": market.market_sentiment,
        "overall_score": market.overall_score,
        "active_coins_count": market.active_coins_count,
        "total_market_cap": None,
        "total_volume_24h": market.total_volume_24h,
        "analysis_summary": market.analysis_summary,
        "updated_at": updated_at,
        "top_gainers": [_mover(symbol, change) for symbol, change in market.top_gainers],
        "top_losers": [_mover(symbol, change) for symbol, change in market.top_losers],
        "average_volatility": market.average_volatility,
        "details": market.details,
    }


def _mover(symbol: str, change_pct: float) -> View:
    return {"symbol": symbol, "price_change_24h": change_pct}


def system_health_view(snapshot: Snapshot, freshness: View, *, stale_after_s: float, cache_status: str) -> View:
    """What the API measured about the data it serves (``degraded`` while the shared cache is failing)."""
    status = "stale" if freshness["stale"] else "degraded" if cache_status == "down" else "healthy"
    return {
        "status": status,
        "cache_status": cache_status,
        "data_age_seconds": freshness["age_seconds"],
        "stale_after_seconds": stale_after_s,
        "stale": freshness["stale"],
        "data_source": freshness["data_source"],
        "run_id": snapshot.run_id,
        "symbols_analysed": len(snapshot.recommendations),
        "symbols_failed": len(snapshot.errors),
    }


def symbols_view(snapshot: Snapshot) -> list[View]:
    """Every symbol of the run with its last price, score and label, best rank first."""
    ranked = sorted(snapshot.recommendations, key=lambda rec: rec.rank)
    return [
        {
            "symbol": rec.symbol,
            "rank": rec.rank,
            "current_price": rec.current_price,
            "price_change_24h": rec.price_change_24h,
            "total_score": rec.total_score,
            "recommendation_strength": rec.label.value,
            "has_levels": rec.symbol in snapshot.levels,
        }
        for rec in ranked
    ]


class RunMemo(Generic[T]):
    """Remembers one value derived from each exchange's current run; rebuilt when the run_id changes."""

    def __init__(self, build: Callable[[Snapshot], T]) -> None:
        self._build = build
        self._entries: dict[str, tuple[str, T]] = {}

    def get(self, snapshot: Snapshot) -> T:
        """The value for ``snapshot``, built once per run."""
        entry = self._entries.get(snapshot.exchange)
        if entry is not None and entry[0] == snapshot.run_id:
            return entry[1]
        value = self._build(snapshot)
        self._entries[snapshot.exchange] = (snapshot.run_id, value)
        return value


class FragmentMemo:
    """Pre-serialised JSON parts of each exchange's current run (``orjson.Fragment``), keyed by what a request asked.

    The run-derived part of a body is rendered once per run and key; only the per-request fields (freshness, health)
    are serialised each time. Entries are dropped when the exchange's run changes (at most ``max_entries`` per run).
    Used from the event loop only.
    """

    def __init__(self, *, max_entries: int = 512) -> None:
        self._max_entries = max_entries
        self._runs: dict[str, tuple[str, dict[Hashable, orjson.Fragment]]] = {}

    def get(self, snapshot: Snapshot, key: Hashable, build: Callable[[], object]) -> orjson.Fragment:
        """The serialised ``build()`` for ``key`` in ``snapshot``'s run, built on first use."""
        entry = self._runs.get(snapshot.exchange)
        if entry is None or entry[0] != snapshot.run_id:
            entry = self._runs[snapshot.exchange] = (snapshot.run_id, {})
        parts = entry[1]
        fragment = parts.get(key)
        if fragment is None:
            if len(parts) >= self._max_entries:
                parts.clear()
            fragment = parts[key] = orjson.Fragment(dump_json(build()))
        return fragment
