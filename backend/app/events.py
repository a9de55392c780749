"""Webhook events derived from a published run: what each subscription receives. Pure: no I/O, no clock.

Invariants:
- ``run.published``: one per run: run id, ``as_of``, the subscription's horizon and its top N recommendations (best
  rank first, among the subscribed symbols).
- ``label.changed``: one per symbol present in this run and the previous published run of the exchange whose label
  at the subscription's horizon differs; carries from → to and the new score, rank and probability.
- ``level.broken``: one per served support or resistance tier of the previous run (the levels the API served until
  this run) that a closed candle of the run's timeframe crossed: a support when a candle closed below it after the
  one before closed at or above it, a resistance the other way round. The candles judged are those closed after
  the previous run's ``as_of`` up to this run's, plus the one closing at the previous ``as_of`` as the reference.
  Each served level is judged once, over the candles before the next run; only the first crossing is reported.
- A subscription's filters: ``exchanges`` (empty: every one), ``symbols`` (empty: every one; ``BTC`` matches any
  quote, ``BTC/USDT`` only that pair), ``horizon`` (empty: the run's default horizon).
Datetimes stay aware ``datetime`` objects here; the outbox serialises the payloads.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.domain import Candle, HorizonScore, Recommendation, Snapshot, ms_to_datetime, timeframe_ms

TIERS = ("aggressive", "moderate", "conservative")
SIDES = ("support", "resistance")


class EventType(enum.StrEnum):
    """Every event a webhook can receive; ``webhook.test`` is sent only by ``dantaro webhooks test``."""

    RUN_PUBLISHED = "run.published"
    LABEL_CHANGED = "label.changed"
    LEVEL_BROKEN = "level.broken"
    TEST = "webhook.test"


MAX_WINDOW_CANDLES = 500  # a worker down longer than this many candles judges the newest ones only


SUBSCRIBABLE = (EventType.RUN_PUBLISHED, EventType.LABEL_CHANGED, EventType.LEVEL_BROKEN)
NEEDS_PREVIOUS = frozenset({EventType.LABEL_CHANGED, EventType.LEVEL_BROKEN})


@dataclass(frozen=True, slots=True)
class Subscription:
    """What one webhook asked for (its stored filters)."""

    webhook_id: str
    events: frozenset[str]
    exchanges: tuple[str, ...] = ()
    symbols: tuple[str, ...] = ()
    horizon: str = ""
    top_n: int = 10

    def wants_exchange(self, exchange: str) -> bool:
        """Whether runs of ``exchange`` concern this subscription."""
        return not self.exchanges or exchange in self.exchanges

    def covers(self, symbol: str) -> bool:
        """Whether ``symbol`` (``BASE/QUOTE``) passes the symbol filter."""
        base = symbol.partition("/")[0]
        return not self.symbols or any(wanted in (symbol, base) for wanted in self.symbols)


@dataclass(frozen=True, slots=True)
class Event:
    """One event for one subscription: its type and its JSON-ready data."""

    type: EventType
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CandleWindow:
    """The closed candles ``level.broken`` judges: ``timeframe`` candles opening at or after ``since_ms`` and closed
    by ``until_ms`` (epoch ms)."""

    timeframe: str
    since_ms: int
    until_ms: int


def candle_window(previous: Snapshot, current: Snapshot) -> CandleWindow:
    """The candles between the previous run's ``as_of`` and this run's, plus the reference candle before them (at
    most ``MAX_WINDOW_CANDLES``: after a longer outage, the newest ones)."""
    step_ms = timeframe_ms(current.timeframe)
    until_ms = int(current.data_as_of.timestamp() * 1000)
    since_ms = max(int(previous.data_as_of.timestamp() * 1000) - step_ms, until_ms - MAX_WINDOW_CANDLES * step_ms)
    return CandleWindow(current.timeframe, since_ms, until_ms)


def run_events(
    subscription: Subscription,
    *,
    current: Snapshot,
    previous: Snapshot | None,
    candles: Mapping[str, Sequence[Candle]],
) -> list[Event]:
    """Every event ``current`` raises for ``subscription`` (``candles``: the ``candle_window`` per symbol)."""
    if not subscription.wants_exchange(current.exchange):
        return []
    horizon = subscription.horizon or current.default_horizon or _first_horizon(current)
    events: list[Event] = []
    if EventType.RUN_PUBLISHED in subscription.events:
        events.append(Event(EventType.RUN_PUBLISHED, run_published(subscription, current, horizon=horizon)))
    if previous is None:
        return events
    if EventType.LABEL_CHANGED in subscription.events:
        events.extend(label_changes(subscription, current, previous, horizon=horizon))
    if EventType.LEVEL_BROKEN in subscription.events:
        events.extend(level_breaks(subscription, current, previous, candles))
    return events


def run_published(subscription: Subscription, current: Snapshot, *, horizon: str) -> dict[str, Any]:
    """The ``run.published`` data: the run and its top N at ``horizon`` among the subscribed symbols."""
    ranked = _ranked(current.recommendations, subscription, horizon)
    return {
        **_run_fields(current),
        "horizon": horizon,
        "symbols_ok": len(current.recommendations),
        "symbols_failed": len(current.errors),
        "top": [_call(rec, view) for rec, view in ranked[: subscription.top_n]],
    }


def label_changes(
    subscription: Subscription, current: Snapshot, previous: Snapshot, *, horizon: str
) -> Iterable[Event]:
    """One ``label.changed`` per subscribed symbol whose label at ``horizon`` moved since ``previous``."""
    before = {rec.symbol: _at(rec, horizon) for rec in previous.recommendations}
    for rec in current.recommendations:
        view, old = _at(rec, horizon), before.get(rec.symbol)
        if view is None or old is None or old.label == view.label or not subscription.covers(rec.symbol):
            continue
        data = {
            **_run_fields(current),
            "previous_run_id": previous.run_id,
            "symbol": rec.symbol,
            "horizon": horizon,
            "from": str(old.label),
            "to": str(view.label),
            **_call(rec, view),
        }
        data.pop("label")
        yield Event(EventType.LABEL_CHANGED, data)


def level_breaks(
    subscription: Subscription, current: Snapshot, previous: Snapshot, candles: Mapping[str, Sequence[Candle]]
) -> Iterable[Event]:
    """One ``level.broken`` per served tier of ``previous`` that a closed candle crossed (see the module)."""
    for symbol, levels in sorted(previous.levels.items()):
        series = candles.get(symbol, ())
        if not subscription.covers(symbol) or len(series) < 2:
            continue
        for side, tier in itertools.product(SIDES, TIERS):
            price = getattr(levels, f"{tier}_{side}")
            crossing = None if price is None else first_crossing(series, price=price, side=side)
            if crossing is None:
                continue
            yield Event(
                EventType.LEVEL_BROKEN,
                {
                    **_run_fields(current),
                    "symbol": symbol,
                    "side": side,
                    "tier": tier,
                    "level": price,
                    "served_run_id": previous.run_id,
                    "served_as_of": previous.data_as_of,
                    "candle": _candle(crossing, timeframe=current.timeframe),
                },
            )


def first_crossing(series: Sequence[Candle], *, price: float, side: str) -> Candle | None:
    """The first candle that closed beyond ``price`` (below a support, above a resistance) after one that did not."""
    for before, candle in itertools.pairwise(series):
        if side == "support" and before.close >= price > candle.close:
            return candle
        if side == "resistance" and before.close <= price < candle.close:
            return candle
    return None


def _ranked(
    recommendations: Sequence[Recommendation], subscription: Subscription, horizon: str
) -> list[tuple[Recommendation, HorizonScore]]:
    views = ((rec, _at(rec, horizon)) for rec in recommendations if subscription.covers(rec.symbol))
    present = [(rec, view) for rec, view in views if view is not None]
    return sorted(present, key=lambda pair: (pair[1].rank, pair[0].symbol))


def _at(rec: Recommendation, horizon: str) -> HorizonScore | None:
    """The recommendation seen at ``horizon``, or None when the run did not serve it."""
    if horizon in rec.scores_by_horizon:
        return rec.scores_by_horizon[horizon]
    if not horizon or horizon == rec.horizon or not rec.scores_by_horizon:
        return HorizonScore(rec.total_score, rec.rank, rec.label, rec.probability_outperform)
    return None


def _first_horizon(snapshot: Snapshot) -> str:
    return snapshot.recommendations[0].horizon if snapshot.recommendations else ""


def _run_fields(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "exchange": snapshot.exchange,
        "run_id": snapshot.run_id,
        "as_of": snapshot.data_as_of,
        "generated_at": snapshot.generated_at,
    }


def _call(rec: Recommendation, view: HorizonScore) -> dict[str, Any]:
    return {
        "symbol": rec.symbol,
        "rank": view.rank,
        "score": view.score,
        "label": str(view.label),
        "probability_outperform": view.probability_outperform,
        "price": rec.current_price,
    }


def _candle(candle: Candle, *, timeframe: str) -> dict[str, Any]:
    return {
        "timeframe": timeframe,
        "open_time": ms_to_datetime(candle.open_time_ms),
        "close_time": ms_to_datetime(candle.open_time_ms + timeframe_ms(timeframe)),
        "close": candle.close,
    }
