"""A worker cycle on a loopback emulator (``tests.support.emulator``), and checks of what it stored."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select

from app.config import Settings
from app.domain import Candle
from app.exchange import CcxtSource, RetryPolicy
from app.storage.models import CandleModel
from app.worker.cycle import ExchangeCycle
from tests.support.emulator import Emulator
from tests.support.network import free_port
from tests.support.storage import StorageBackend

LOOKBACK = 60


def settings_for(backend: StorageBackend, exchanges: dict[str, Emulator], **values: Any) -> Settings:
    """Worker settings collecting from the emulators (the refit's history: 24 + 24 + 200 = 248 hourly candles)."""
    defaults: dict[str, Any] = {
        "lookback_candles": LOOKBACK,
        "universe_min_history_days": 5,
        "fit_window_days": 1,
        "fit_min_days": 1,
    }
    return Settings(
        _env_file=None,
        database_url=backend.url,
        market_source="ccxt",
        exchanges=list(exchanges),
        exchange_options={name: emulator.ccxt_options() for name, emulator in exchanges.items()},
        **{**defaults, **values},
    )


def stored(backend: StorageBackend, exchange: str, symbol: str, timeframe: str) -> list[Candle]:
    """The stored candles of one series, ascending."""
    with backend.session_factory() as session:
        rows = session.scalars(
            select(CandleModel)
            .where(CandleModel.exchange == exchange, CandleModel.symbol == symbol, CandleModel.timeframe == timeframe)
            .order_by(CandleModel.open_time_ms)
        ).all()
    return [Candle(r.open_time_ms, r.open, r.high, r.low, r.close, r.volume) for r in rows]


def assert_exact(backend: StorageBackend, emulator: Emulator, exchange: str) -> None:
    """Stored candles are exactly the emulator's closed candles from the first stored one: none lost or invented."""
    for base in emulator.bases:
        for timeframe in ("1h", "1d"):
            have = stored(backend, exchange, emulator.symbol(base), timeframe)
            assert have, (base, timeframe)
            assert have == emulator.closed(base, timeframe, since_ms=have[0].open_time_ms), (base, timeframe)


def recording_sleep(slept: list[float]) -> Callable[[float], Awaitable[None]]:
    """A sleep seam that records each wait and returns at once."""

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    return sleep


def make_cycle(
    backend: StorageBackend,
    emulator: Emulator,
    slept: list[float],
    *,
    unreachable: bool = False,
    budget_s: float | None = None,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    wall_clock_s: Callable[[], float] = time.time,
    timeout_ms: int = 1000,
    **values: Any,
) -> ExchangeCycle:
    """One exchange's cycle on the emulator's clock; waits go to ``sleep`` (default: recorded in ``slept``)."""
    settings = settings_for(backend, {emulator.kind: emulator}, **values)
    options = {**emulator.ccxt_options(), "timeout": timeout_ms}
    if unreachable:  # the same URLs on a port nothing listens on
        options["urls"] = {
            "api": {"public": options["urls"]["api"]["public"].replace(str(emulator.port), str(free_port()))}
        }
    source = CcxtSource(
        emulator.kind,
        quote=emulator.quote,
        options=options,
        timeframes=settings.timeframes,
        retry_policy=policy or RetryPolicy(max_attempts=4, base_delay_s=0.5, cycle_budget_s=budget_s),
        sleep=sleep or recording_sleep(slept),
        clock_ms=lambda: emulator.now_ms,
        wall_clock_s=wall_clock_s,
    )
    return ExchangeCycle(source=source, settings=settings, session_factory=backend.session_factory, cache=None)
