"""A ``MarketSource`` that replays recorded candles (``BASE_QUOTE-TF.json[.gz]`` files) on a simulated clock.

Invariants:
- Files hold JSON arrays of ``[open_time_ms, open, high, low, close, base_volume]``; they are found under
  ``data_dir/<timeframe>/`` (or directly in ``data_dir``), read once per timeframe and checked by
  ``app.candle_data`` (the rules of ``dantaro check-data``), then kept in memory.
- Isolation: a file that is not usable (unreadable, truncated, not JSON, a wrong row shape, a non-numeric or
  non-finite value, descending or duplicate open times) only takes out its own symbol and timeframe: its candles
  raise ``BadData`` naming the file, the row and what is wrong; its symbol is still a market (so the run lists the
  reason) and has no ticker; every other file is served. The clock's bounds come from the usable files.
- The clock starts ``warmup_candles`` steps after the latest first open time among the step-timeframe files
  (or one step after ``resume_from_ms``, whichever is later), advances one step per ``start_cycle()`` and never
  passes the last candle close in the data. Given ``stored_until_ms`` (close time of the newest stored candle
  of the step timeframe), ``start_cycle`` derives the clock from it instead: ``min(data end, max(warm-up start,
  stored_until_ms + one step))``, so several workers, each with its own source, share one clock that never
  goes backwards.
- Causality: nothing returned closes after the simulated now (nor after the ``now_ms`` a caller passes).
- Tickers are derived from the step-timeframe candles closed by now with ``app.domain.ticker_from_candles`` (24h
  change vs the close 24h earlier; quote volume approximated by ``sum(close * base_volume)``, the files carry no
  quote volume), the one definition ``dantaro evaluate`` uses too: ``tickers_source`` is ``candles``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import structlog

from app.candle_data import find_files, read_file
from app.domain import DAY_MS, Candle, Market, Ticker, TickersSource, ticker_from_candles, timeframe_ms
from app.exchange.errors import BadData, ExchangeError, SymbolNotFound

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Series:
    """One symbol's candles of one timeframe: open times (ms, ascending, unique) and OHLCV columns."""

    open_ms: npt.NDArray[np.int64]
    ohlcv: npt.NDArray[np.float64]  # columns: open, high, low, close, base volume


def load_series(path: Path, *, data_dir: Path | None = None) -> Series:
    """Read one candle file into a ``Series``; ``BadData`` with the file's problems when it is not usable."""
    checked = read_file(path, data_dir=data_dir)
    if checked.problems:
        raise BadData(f"replay file {checked.reason()}")
    rows = np.asarray([row[:6] for row in checked.rows], dtype=np.float64)
    return Series(open_ms=rows[:, 0].astype(np.int64), ohlcv=np.ascontiguousarray(rows[:, 1:6]))


def closed_count(series: Series, *, step_ms: int, now_ms: int) -> int:
    """How many leading candles of ``series`` have closed at or before ``now_ms``."""
    return int(np.searchsorted(series.open_ms, now_ms - step_ms, side="right"))


def candles_between(series: Series, *, since_ms: int | None, limit: int, end: int) -> list[Candle]:
    """Candles of ``series[:end]``: the first ``limit`` from ``since_ms``, or the last ``limit`` without it."""
    if since_ms is None:
        start = max(0, end - limit)
    else:
        start = int(np.searchsorted(series.open_ms[:end], since_ms, side="left"))
        end = min(end, start + max(limit, 0))
    if start >= end:
        return []
    return [
        Candle(open_time_ms=t, open=o, high=h, low=lo, close=c, volume=v)
        for t, (o, h, lo, c, v) in zip(
            series.open_ms[start:end].tolist(), series.ohlcv[start:end].tolist(), strict=True
        )
    ]


class ReplaySource:
    """Replays recorded candles as if they were arriving live, one step of the clock per cycle."""

    tickers_source = TickersSource.CANDLES

    def __init__(
        self,
        exchange_id: str = "binance",
        *,
        data_dir: Path,
        timeframes: Sequence[str],
        step_timeframe: str,
        warmup_candles: int,
        quote: str = "USDT",
        resume_from_ms: int | None = None,
    ) -> None:
        self.exchange_id = exchange_id
        self.quote = quote.upper()
        self._data_dir = Path(data_dir)
        self._timeframes = tuple(dict.fromkeys([*timeframes, step_timeframe]))
        self._step_timeframe = step_timeframe
        self._step_ms = timeframe_ms(step_timeframe)
        self._warmup_candles = warmup_candles
        self._resume_from_ms = resume_from_ms
        self._loaded: dict[str, dict[str, Series]] = {}
        self._damaged: dict[str, dict[str, str]] = {}  # timeframe -> symbol -> why its file is not usable
        self._load_lock = asyncio.Lock()
        self._bounds_ms: tuple[int, int] | None = None
        self._now_ms: int | None = None
        self._exhausted_logged = False

    @property
    def now_ms(self) -> int | None:
        """The simulated now of the current cycle, ``None`` before the first ``start_cycle()``."""
        return self._now_ms

    async def start_cycle(self, *, stored_until_ms: int | None = None) -> int:
        """Advance the simulated clock one step past ``stored_until_ms`` (else past its own last value) and return it.

        The first call without a stored position places the clock after the warm-up (or the resume point).
        """
        initial_ms, end_ms = await self._bounds()
        if stored_until_ms is not None:
            target_ms = max(initial_ms, stored_until_ms + self._step_ms)
        elif self._now_ms is None:
            target_ms = initial_ms
            if self._resume_from_ms is not None:
                target_ms = max(initial_ms, self._resume_from_ms + self._step_ms)
            log.info("replay_clock_started", exchange=self.exchange_id, now_ms=min(target_ms, end_ms), end_ms=end_ms)
        else:
            target_ms = self._now_ms + self._step_ms
        if target_ms > end_ms and not self._exhausted_logged:
            log.warning("replay_exhausted", exchange=self.exchange_id, end_ms=end_ms)
            self._exhausted_logged = True
        self._now_ms = min(target_ms, end_ms)
        return self._now_ms

    async def load_markets(self) -> list[Market]:
        """One spot market per step-timeframe file quoted in ``self.quote`` (a damaged one included)."""
        symbols = sorted({*await self._timeframe(self._step_timeframe), *self._damaged[self._step_timeframe]})
        return [Market(symbol=s, base=s.split("/")[0], quote=self.quote) for s in symbols]

    async def fetch_tickers(self, symbols: Sequence[str]) -> dict[str, Ticker]:
        """Tickers computed from the step-timeframe candles closed by the simulated now; unknown symbols left out."""
        all_series = await self._timeframe(self._step_timeframe)
        now_ms = await self._clock_ms()
        tickers: dict[str, Ticker] = {}
        for symbol in symbols:
            series = all_series.get(symbol)
            ticker = None if series is None else self._ticker(symbol, series, now_ms=now_ms)
            if ticker is not None:
                tickers[symbol] = ticker
        return tickers

    def _ticker(self, symbol: str, series: Series, *, now_ms: int) -> Ticker | None:
        end = closed_count(series, step_ms=self._step_ms, now_ms=now_ms)
        day = candles_between(series, since_ms=None, limit=DAY_MS // self._step_ms + 1, end=end)
        return ticker_from_candles(symbol, day, step_ms=self._step_ms, now_ms=now_ms)

    async def fetch_closed_candles(
        self, symbol: str, timeframe: str, *, since_ms: int | None, limit: int, now_ms: int
    ) -> list[Candle]:
        """Recorded candles closed by ``min(now_ms, simulated now)``, per the ``MarketSource`` contract."""
        series = (await self._timeframe(timeframe)).get(symbol)
        if symbol in self._damaged[timeframe]:
            raise BadData(self._damaged[timeframe][symbol])
        if series is None:
            raise SymbolNotFound(f"replay has no {timeframe} candles for {symbol} ({self.exchange_id})")
        until_ms = min(now_ms, await self._clock_ms())
        end = closed_count(series, step_ms=timeframe_ms(timeframe), now_ms=until_ms)
        return candles_between(series, since_ms=since_ms, limit=limit, end=end)

    async def close(self) -> None:
        """Drop the candles held in memory."""
        self._loaded.clear()
        self._damaged.clear()
        self._bounds_ms = None

    async def _clock_ms(self) -> int:
        if self._now_ms is not None:
            return self._now_ms
        initial_ms, end_ms = await self._bounds()
        return min(initial_ms, end_ms)

    async def _bounds(self) -> tuple[int, int]:
        if self._bounds_ms is None:
            step_series = [s for s in (await self._timeframe(self._step_timeframe)).values() if s.open_ms.size]
            if not step_series:
                damaged = len(self._damaged[self._step_timeframe])
                raise ExchangeError(
                    f"replay data for {self.quote} {self._step_timeframe} has no usable candles ({damaged} files "
                    "not usable: see dantaro check-data)"
                )
            first_ms = max(int(s.open_ms[0]) for s in step_series)
            end_ms = max(int(s.open_ms[-1]) for s in step_series) + self._step_ms
            self._bounds_ms = (first_ms + self._warmup_candles * self._step_ms, end_ms)
        return self._bounds_ms

    async def _timeframe(self, timeframe: str) -> Mapping[str, Series]:
        if timeframe not in self._timeframes:
            raise SymbolNotFound(f"replay serves timeframes {list(self._timeframes)}, not {timeframe!r}")
        async with self._load_lock:
            if timeframe not in self._loaded:
                self._loaded[timeframe] = await asyncio.to_thread(self._read_timeframe, timeframe)
        return self._loaded[timeframe]

    def _read_timeframe(self, timeframe: str) -> dict[str, Series]:
        files = find_files(self._data_dir, timeframe=timeframe, quote=self.quote)
        if not files and timeframe == self._step_timeframe:
            raise ExchangeError(f"no replay files for {self.quote} {timeframe} under {self._data_dir}")
        series: dict[str, Series] = {}
        damaged: dict[str, str] = {}
        for symbol, path in files.items():
            try:
                series[symbol] = load_series(path, data_dir=self._data_dir)
            except BadData as exc:
                damaged[symbol] = str(exc)
        self._damaged[timeframe] = damaged
        log.info(
            "replay_loaded", exchange=self.exchange_id, timeframe=timeframe, symbols=len(series), damaged=len(damaged)
        )
        return series
