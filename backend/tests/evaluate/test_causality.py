"""The evaluation runs what the worker runs, on what the worker would hold, and never reads past its reach.

- Same calls: at an evaluation time, the held candles and tickers equal what the replay source serves the worker at
  that time, the models equal ``refit`` on the candles the source serves at the fit time, and the analysis equals
  ``analyse`` called the way the worker's cycle calls it.
- Causality: the report is identical when every candle after the last evaluation time plus the reach is replaced by
  garbage or removed; garbage one candle earlier changes it (the bound is tight, the test can fail).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from app.analysis import FitSettings, analyse
from app.analysis.options import AnalysisOptions
from app.analysis.served import refit
from app.domain import Candle, default_horizons, ms_to_datetime
from app.evaluate.replay import MarketData, load_market, market_data
from app.evaluate.walk import EvaluationConfig, evaluate, evaluation_times, reach_candles, served_periods
from app.exchange.replay import ReplaySource
from tests.support.candles import bundled_candles, copy_replay_pairs

HOUR_MS, DAY_MS = 3_600_000, 86_400_000
BASES = ("BTC", "ETH", "SOL", "ADA", "XRP", "DOGE", "LINK")
OPTIONS = AnalysisOptions(
    analysis_timeframe="1h",
    levels_timeframe="1d",
    lookback_candles=300,
    horizons=default_horizons("1h"),
    default_horizon="4h",
    fit=FitSettings(window_candles=10 * 24, min_cross_sections=4 * 24, calibration_min_per_bin=20, edge_min_t=1.0),
    refit_interval_s=86_400.0,
)


@pytest.fixture(scope="module")
def hourly() -> dict[str, list[Candle]]:
    """The first 900 real 1h candles of seven pairs."""
    return {f"{base}/USDT": list(bundled_candles(base, "1h")[:900]) for base in BASES}


def market_of(candles: dict[str, list[Candle]]) -> MarketData:
    return market_data(candles, None, analysis_timeframe="1h", levels_timeframe="1d")


CONFIG = EvaluationConfig(step=13, start_ms=None, end_ms=bundled_candles("BTC", "1h")[700].open_time_ms)


def garbled(candles: dict[str, list[Candle]], *, from_ms: int) -> dict[str, list[Candle]]:
    """Every candle opening at or after ``from_ms`` turned into garbage: prices x 1000 and scrambled volume."""
    return {
        symbol: [
            c if c.open_time_ms < from_ms else replace(c, high=c.high * 1e3, low=c.low * 1e3, close=c.close * 1e3,
                                                        open=c.open * 1e3, volume=c.volume * 7 + 1)
            for c in series
        ]
        for symbol, series in candles.items()
    }  # fmt: skip


def test_the_report_never_reads_a_candle_after_the_last_period_plus_the_reach(hourly: dict[str, list[Candle]]) -> None:
    times = evaluation_times(market_of(hourly), CONFIG)
    first_unread_ms = times[-1] + reach_candles(OPTIONS) * HOUR_MS  # the last entry opens at times[-1] - 1h
    report = evaluate(market_of(hourly), OPTIONS, CONFIG)
    assert report["periods"] == len(times) > 10 and report["models"]["4h"]["share_labels_active"]
    garbage = garbled(hourly, from_ms=first_unread_ms)
    removed = {s: [c for c in series if c.open_time_ms < first_unread_ms] for s, series in hourly.items()}
    assert evaluate(market_of(garbage), OPTIONS, CONFIG) == report
    assert evaluate(market_of(removed), OPTIONS, CONFIG) == report
    one_earlier = garbled(hourly, from_ms=first_unread_ms - HOUR_MS)
    assert evaluate(market_of(one_earlier), OPTIONS, CONFIG) != report


@pytest.fixture(scope="module")
def replay_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled 1h and 1d files of five pairs, laid out as the replay source reads them."""
    return copy_replay_pairs(tmp_path_factory.mktemp("replay"), BASES[:5])


async def fetch(source: ReplaySource, symbol: str, timeframe: str, *, now_ms: int) -> list[Candle]:
    """What the worker's cycle loads: the last ``lookback_candles`` closed by now."""
    return await source.fetch_closed_candles(symbol, timeframe, since_ms=None, limit=300, now_ms=now_ms)


async def test_each_period_is_what_the_worker_holds_and_runs(replay_dir: Path) -> None:
    market = load_market(replay_dir, analysis_timeframe="1h", levels_timeframe="1d")
    assert not market.levels_resampled  # the 1d files are read, as the replay worker reads them
    start_ms = bundled_candles("BTC", "1h")[600].open_time_ms
    times = [start_ms + 7 * HOUR_MS, start_ms + 31 * HOUR_MS]
    periods = list(served_periods(market, OPTIONS, times))
    assert [p.holding.now_ms for p in periods] == times
    for period in periods:
        now_ms = period.holding.now_ms
        source = ReplaySource(data_dir=replay_dir, timeframes=["1h", "1d"], step_timeframe="1h", warmup_candles=1)
        assert await source.start_cycle(stored_until_ms=now_ms - HOUR_MS) == now_ms
        symbols = sorted(period.holding.candles)
        candles = {s: {tf: await fetch(source, s, tf, now_ms=now_ms) for tf in ("1h", "1d")} for s in symbols}
        tickers = await source.fetch_tickers(symbols)
        assert period.holding.candles == candles and period.holding.tickers == tickers
        fit_ms = now_ms // DAY_MS * DAY_MS
        stored = {
            s: await source.fetch_closed_candles(s, "1h", since_ms=None, limit=OPTIONS.history_candles, now_ms=fit_ms)
            for s in symbols
        }
        models = refit(stored, OPTIONS, fitted_at=ms_to_datetime(fit_ms))
        assert period.models == models and any(m.weights_source == "fitted" for m in models.values())
        worker_result = analyse(
            candles,
            tickers=tickers,
            analysis_timeframe="1h",
            levels_timeframe="1d",
            horizons=OPTIONS.horizons,
            models=models,
            default_horizon=OPTIONS.default_horizon,
            liquidity=OPTIONS.liquidity,
        )
        assert repr(period.result) == repr(worker_result)  # repr: NaN-safe exact comparison
