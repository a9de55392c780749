"""The events a run raises, on snapshots and candles of the bundled real Binance history: run.published's top N,
label changes against the previous run, levels the previous run served crossed by the candles closed since."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest

from app.domain import Candle, Snapshot, ms_to_datetime, timeframe_ms
from app.events import (
    SUBSCRIBABLE,
    EventType,
    Subscription,
    candle_window,
    first_crossing,
    run_events,
)
from tests.support.candles import closed
from tests.support.snapshots import SNAPSHOT_AS_OF_MS, build_snapshot

DAY_MS = timeframe_ms("1d")
HOUR_MS = timeframe_ms("1h")
EVERYTHING = Subscription("hook", frozenset(str(event) for event in SUBSCRIBABLE))


def _pair(*, start_days: int, days: int) -> tuple[Snapshot, Snapshot, dict[str, list[Candle]]]:
    """Two runs ``days`` apart and the 1h candles of the window between them (the real bundled ones)."""
    previous = build_snapshot(run_id="previous", as_of_ms=SNAPSHOT_AS_OF_MS + start_days * DAY_MS)
    current = build_snapshot(run_id="current", as_of_ms=SNAPSHOT_AS_OF_MS + (start_days + days) * DAY_MS)
    window = candle_window(previous, current)
    candles = {
        symbol: [
            c for c in closed(symbol.split("/")[0], "1h", as_of_ms=window.until_ms) if c.open_time_ms >= window.since_ms
        ]
        for symbol in previous.levels
    }
    return previous, current, candles


def _of(events: Sequence[object], kind: EventType) -> list[dict[str, object]]:
    return [event.data for event in events if event.type is kind]  # type: ignore[attr-defined]


def test_the_window_is_the_candles_closed_since_the_previous_run_plus_its_last_one() -> None:
    previous, current, candles = _pair(start_days=-24, days=4)
    window = candle_window(previous, current)
    assert window.since_ms == int(previous.data_as_of.timestamp() * 1000) - HOUR_MS
    assert window.until_ms == int(current.data_as_of.timestamp() * 1000)
    assert all(len(series) == 4 * 24 + 1 for series in candles.values())


def test_without_a_previous_run_only_run_published_is_raised() -> None:
    current = build_snapshot(run_id="first")
    (event,) = run_events(EVERYTHING, current=current, previous=None, candles={})
    assert event.type is EventType.RUN_PUBLISHED
    assert event.data["run_id"] == "first" and event.data["as_of"] == current.data_as_of
    assert event.data["horizon"] == current.default_horizon
    assert [item["symbol"] for item in event.data["top"]] == [rec.symbol for rec in current.recommendations[:10]]
    assert event.data["symbols_ok"] == len(current.recommendations)


def test_run_published_ranks_the_subscribed_symbols_at_the_subscribed_horizon() -> None:
    current = build_snapshot(run_id="run")
    subscription = Subscription(
        "hook", frozenset({"run.published"}), symbols=("ETH", "SOL/USDT", "BTC"), horizon="4h", top_n=2
    )
    (event,) = run_events(subscription, current=current, previous=None, candles={})
    at_4h = sorted(
        (rec.scores_by_horizon["4h"].rank, rec.symbol)
        for rec in current.recommendations
        if rec.symbol in {"ETH/USDT", "SOL/USDT", "BTC/USDT"}
    )
    assert [(item["rank"], item["symbol"]) for item in event.data["top"]] == at_4h[:2]
    assert event.data["horizon"] == "4h"


def test_label_changes_are_those_of_the_symbols_in_both_runs() -> None:
    previous, current, candles = _pair(start_days=0, days=1)
    events = run_events(EVERYTHING, current=current, previous=previous, candles=candles)
    before = {rec.symbol: rec.label for rec in previous.recommendations}
    expected = {
        (rec.symbol, str(before[rec.symbol]), str(rec.label))
        for rec in current.recommendations
        if rec.symbol in before and before[rec.symbol] != rec.label
    }
    changes = _of(events, EventType.LABEL_CHANGED)
    assert expected and {(c["symbol"], c["from"], c["to"]) for c in changes} == expected
    for change in changes:
        rec = next(r for r in current.recommendations if r.symbol == change["symbol"])
        assert (change["score"], change["rank"], change["horizon"]) == (rec.total_score, rec.rank, "24h")
        assert change["previous_run_id"] == "previous" and change["run_id"] == "current"


def test_level_breaks_are_the_first_crossing_of_each_served_tier() -> None:
    previous, current, candles = _pair(start_days=-24, days=4)  # a window with supports and resistances broken
    breaks = _of(run_events(EVERYTHING, current=current, previous=previous, candles=candles), EventType.LEVEL_BROKEN)
    assert {b["side"] for b in breaks} == {"support", "resistance"}
    found = {(b["symbol"], b["side"], b["tier"]): b for b in breaks}
    for symbol, levels in previous.levels.items():
        closes = [c.close for c in candles[symbol]]
        for side, tier in itertools.product(("support", "resistance"), ("aggressive", "moderate", "conservative")):
            price = getattr(levels, f"{tier}_{side}")
            below = [close < price for close in closes] if price is not None else []
            crossed = [i for i in range(1, len(below)) if below[i] != below[i - 1] and below[i] == (side == "support")]
            if not crossed:
                assert (symbol, side, tier) not in found
                continue
            event = found[(symbol, side, tier)]
            candle = candles[symbol][crossed[0]]
            assert event["level"] == price and event["served_run_id"] == "previous"
            assert event["candle"] == {
                "timeframe": "1h",
                "open_time": ms_to_datetime(candle.open_time_ms),
                "close_time": ms_to_datetime(candle.open_time_ms + HOUR_MS),
                "close": candle.close,
            }


@pytest.mark.parametrize("side", ["support", "resistance"])
def test_closing_at_the_level_is_no_crossing_closing_beyond_it_after_is(side: str) -> None:
    series = list(closed("BTC", "1h", as_of_ms=SNAPSHOT_AS_OF_MS))[-3:]
    price = series[1].close  # the middle candle closes exactly at the level
    beyond = series[2].close < price if side == "support" else series[2].close > price
    assert first_crossing(series, price=price, side=side) == (series[2] if beyond else None)
    assert first_crossing(series[:2], price=price, side=side) is None


def test_filters_keep_events_to_their_exchange_and_symbols() -> None:
    previous, current, candles = _pair(start_days=-24, days=4)
    elsewhere = Subscription("hook", EVERYTHING.events, exchanges=("upbit",))
    assert run_events(elsewhere, current=current, previous=previous, candles=candles) == []
    only_btc = Subscription("hook", EVERYTHING.events, symbols=("BTC",))
    events = run_events(only_btc, current=current, previous=previous, candles=candles)
    symbols = {event.data["symbol"] for event in events if event.type is not EventType.RUN_PUBLISHED}
    assert symbols == {"BTC/USDT"}
    (published,) = _of(events, EventType.RUN_PUBLISHED)
    assert [item["symbol"] for item in published["top"]] == ["BTC/USDT"]  # type: ignore[union-attr]
