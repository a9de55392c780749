"""Lossless JSON (orjson) encoding of domain snapshots, for the cache tier and the database's JSON columns.

Invariants:
- ``decode_snapshot(encode_snapshot(s)) == s`` for every field: enums come back as enums, datetimes as aware
  datetimes with their offset, tuples as tuples (including ``Level.sources`` and the gainers/losers pairs),
  nested ``Level`` objects as ``Level``.
- Free-form ``details`` / ``analysis_summary`` / ``errors`` mappings must hold JSON values (str, numbers, bool,
  None, lists, dicts with str keys); they come back as dicts and lists.
- Never pickle: payloads are plain JSON, safe to read from a shared cache. Malformed payloads raise ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from app.domain import Label, Level, MarketStatus, Recommendation, Snapshot, SupportLevels

CODEC_VERSION = 1


def _default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(value: Any) -> bytes:
    """JSON bytes for domain objects (dataclasses, enums, datetimes, tuples, mappings)."""
    return orjson.dumps(value, default=_default)


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (dict, list, str, float, ...), as stored in a JSON column."""
    return orjson.loads(dumps(value))


def encode_snapshot(snapshot: Snapshot) -> bytes:
    """The snapshot as versioned JSON bytes."""
    return dumps({"v": CODEC_VERSION, "snapshot": snapshot})


def decode_snapshot(data: bytes) -> Snapshot:
    """The snapshot encoded by ``encode_snapshot``; ``ValueError`` for anything else."""
    document = orjson.loads(data)
    if not isinstance(document, dict) or document.get("v") != CODEC_VERSION:
        raise ValueError(f"not a version {CODEC_VERSION} snapshot payload")
    try:
        return snapshot_from_json(document["snapshot"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed snapshot payload: {exc!r}") from exc


def snapshot_from_json(data: Mapping[str, Any]) -> Snapshot:
    """A ``Snapshot`` from its JSON form."""
    return Snapshot(
        run_id=data["run_id"],
        exchange=data["exchange"],
        timeframe=data["timeframe"],
        data_as_of=datetime.fromisoformat(data["data_as_of"]),
        generated_at=datetime.fromisoformat(data["generated_at"]),
        universe_size=data["universe_size"],
        recommendations=tuple(recommendation_from_json(item) for item in data["recommendations"]),
        levels={symbol: support_levels_from_json(item) for symbol, item in data["levels"].items()},
        market=market_from_json(data["market"]),
        errors=dict(data["errors"]),
    )


def recommendation_from_json(data: Mapping[str, Any]) -> Recommendation:
    """A ``Recommendation`` from its JSON form (or a row mapping with the same keys)."""
    return Recommendation(
        symbol=data["symbol"],
        rank=data["rank"],
        total_score=data["total_score"],
        technical_score=data["technical_score"],
        volume_score=data["volume_score"],
        volatility_score=data["volatility_score"],
        risk_score=data["risk_score"],
        label=Label(data["label"]),
        current_price=data["current_price"],
        price_change_24h=data["price_change_24h"],
        volume_24h=data["volume_24h"],
        details=dict(data["details"]),
    )


def support_levels_from_json(data: Mapping[str, Any]) -> SupportLevels:
    """A ``SupportLevels`` from its JSON form (or a row mapping with the same keys)."""
    return SupportLevels(
        symbol=data["symbol"],
        aggressive_support=data["aggressive_support"],
        moderate_support=data["moderate_support"],
        conservative_support=data["conservative_support"],
        aggressive_resistance=data["aggressive_resistance"],
        moderate_resistance=data["moderate_resistance"],
        conservative_resistance=data["conservative_resistance"],
        calculation_method=data["calculation_method"],
        data_points_count=data["data_points_count"],
        levels=tuple(level_from_json(item) for item in data["levels"]),
    )


def level_from_json(data: Mapping[str, Any]) -> Level:
    """A ``Level`` from its JSON form."""
    touched = data["last_touched_at"]
    return Level(
        price=data["price"],
        kind=data["kind"],
        strength=data["strength"],
        sources=tuple(data["sources"]),
        touches=data["touches"],
        last_touched_at=None if touched is None else datetime.fromisoformat(touched),
        distance_pct=data["distance_pct"],
    )


def market_from_json(data: Mapping[str, Any]) -> MarketStatus:
    """A ``MarketStatus`` from its JSON form (or a row mapping with the same keys)."""
    return MarketStatus(
        market_trend=data["market_trend"],
        market_sentiment=data["market_sentiment"],
        overall_score=data["overall_score"],
        active_coins_count=data["active_coins_count"],
        total_volume_24h=data["total_volume_24h"],
        average_volatility=data["average_volatility"],
        top_gainers=tuple((symbol, change) for symbol, change in data["top_gainers"]),
        top_losers=tuple((symbol, change) for symbol, change in data["top_losers"]),
        analysis_summary=dict(data["analysis_summary"]),
        details=dict(data["details"]),
    )
