"""Builds the configured ``MarketSource`` for one exchange: the replay of recorded history or live ccxt.

Invariant: nothing is built at import time; a source owns its resources until ``close()``.
"""

from __future__ import annotations

from app.config import Settings
from app.domain import timeframe_ms
from app.exchange.ccxt_source import CcxtSource
from app.exchange.replay import ReplaySource
from app.exchange.retry import RetryPolicy
from app.exchange.source import MarketSource


def build_source(settings: Settings, exchange_id: str, *, resume_from_ms: int | None) -> MarketSource:
    """The ``MarketSource`` that ``settings.market_source`` selects for ``exchange_id``."""
    quote = settings.quote_currency(exchange_id)
    if settings.market_source == "replay":
        return ReplaySource(
            exchange_id,
            data_dir=settings.replay_data_dir,
            timeframes=settings.timeframes,
            step_timeframe=min(settings.timeframes, key=timeframe_ms),
            warmup_candles=settings.replay_warmup_candles,
            quote=quote,
            resume_from_ms=resume_from_ms,
        )
    return CcxtSource(
        exchange_id,
        quote=quote,
        options=settings.exchange_options.get(exchange_id),
        timeframes=settings.timeframes,
        retry_policy=retry_policy(settings),
    )


def retry_policy(settings: Settings, *, cycle_budget: bool = True) -> RetryPolicy:
    """The retry policy the settings describe (without a per-cycle budget for one long job: the backfill)."""
    return RetryPolicy(
        max_attempts=settings.retry_max_attempts,
        base_delay_s=settings.retry_base_delay_s,
        max_delay_s=settings.retry_max_delay_s,
        cycle_budget_s=settings.retry_budget_s if cycle_budget else None,
        ban_max_wait_s=settings.ban_max_wait_s,
    )
