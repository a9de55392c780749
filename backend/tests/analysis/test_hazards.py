"""Data hazards on real-data-shaped fixtures: the bundled Binance candles with one symbol damaged the way real data
gets damaged (a 1:1000 redenomination, a relisting after a gap, a stale series, unknown or zero volume, a listing of
yesterday), through ``analyse`` and through the fit history (``history_columns`` + ``factor_history``)."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterable, Sequence
from itertools import groupby

import numpy as np
import pytest

from app.analysis import analyse, factor_history, history_columns
from app.analysis.hazards import discontinuities, screen, split_at_discontinuities, tickers_after_breaks
from app.analysis.symbol_indicators import MIN_CANDLES, CandleArrays, candle_arrays, check_series
from app.domain import AnalysisResult, Candle, HorizonScore, Label, Recommendation, SupportLevels, Ticker
from tests.support.candles import Universe, bundled_bases, bundled_candles, bundled_universe

LOOKBACK = 500
VICTIM = "SOL/USDT"
HOUR_MS, DAY_MS = 3_600_000, 86_400_000
SymbolCandles = dict[str, list[Candle]]  # timeframe -> candles
SHORT_HORIZONS = ("1h", "4h")  # their prior weights read prices only (reversal, close position, volatility)


def run(universe: Universe, *, tickers: dict[str, Ticker] | None = None) -> AnalysisResult:
    return analyse(universe, tickers=tickers or {}, analysis_timeframe="1h", levels_timeframe="1d")


@pytest.fixture(scope="module")
def universe() -> Universe:
    return bundled_universe(lookback=LOOKBACK)


@pytest.fixture(scope="module")
def clean(universe: Universe) -> AnalysisResult:
    return run(universe)


def scaled(candle: Candle, factor: float) -> Candle:
    """The candle with its prices times ``factor`` and its base volume divided by it (the same quote volume)."""
    return Candle(
        candle.open_time_ms,
        candle.open * factor,
        candle.high * factor,
        candle.low * factor,
        candle.close * factor,
        candle.volume / factor,
    )


def daily(hours: Sequence[Candle]) -> Candle:
    """One day candle aggregated from its hour candles, as the exchange builds it."""
    return Candle(
        hours[0].open_time_ms - hours[0].open_time_ms % DAY_MS,
        hours[0].open,
        max(c.high for c in hours),
        min(c.low for c in hours),
        hours[-1].close,
        sum(c.volume for c in hours),
    )


def damaged(days: Sequence[Candle], hours: list[Candle], *, since_ms: int, days_before: float = 1.0) -> SymbolCandles:
    """A symbol with damaged ``hours``; its day candles from the day of ``since_ms`` on are rebuilt from them (only
    closed days), earlier days are scaled by ``days_before``."""
    first_day_ms = since_ms - since_ms % DAY_MS
    closed_until_ms = hours[-1].open_time_ms + HOUR_MS
    rebuilt = [
        daily(group)
        for day_ms, candles in groupby(
            (c for c in hours if c.open_time_ms >= first_day_ms), lambda c: c.open_time_ms // DAY_MS
        )
        if (day_ms + 1) * DAY_MS <= closed_until_ms and (group := list(candles))
    ]
    return {"1h": hours, "1d": [scaled(d, days_before) for d in days if d.open_time_ms < first_day_ms] + rebuilt}


def redenominated(universe: Universe, *, after: int, before: float, later: float) -> SymbolCandles:
    """The victim swapped 1:1000 ``after`` candles before the end: older prices times ``before``, newer ``later``."""
    hours = universe[VICTIM]["1h"]
    swap_ms = hours[-after].open_time_ms
    moved = [scaled(c, before if c.open_time_ms < swap_ms else later) for c in hours]
    return damaged(universe[VICTIM]["1d"], moved, since_ms=swap_ms, days_before=before)


def replaced(universe: Universe, **symbols: SymbolCandles | None) -> Universe:
    """The universe with some symbols' candles replaced (keyword ``SOL`` means ``SOL/USDT``); None removes one."""
    out = dict(universe)
    for base, by_tf in symbols.items():
        out.pop(f"{base}/USDT")
        if by_tf is not None:
            out[f"{base}/USDT"] = by_tf
    return out


def others(
    result: AnalysisResult, *, without: Iterable[str] = (VICTIM,)
) -> dict[str, tuple[Recommendation, SupportLevels]]:
    """Every other symbol's recommendation and levels."""
    skip = set(without)
    recs = {r.symbol: r for r in result.recommendations if r.symbol not in skip}
    return {s: (recs[s], result.levels[s]) for s in sorted(recs)}


def short_scores(result: AnalysisResult, *, without: str = VICTIM) -> dict[str, dict[str, HorizonScore]]:
    """Every other symbol's scores at the horizons whose prior weights read prices only."""
    return {
        r.symbol: {h: r.scores_by_horizon[h] for h in SHORT_HORIZONS}
        for r in result.recommendations
        if r.symbol != without
    }


def assert_publishable(result: AnalysisResult) -> None:
    """Nothing published is NaN or infinite (strict JSON over every recommendation, level, market and model)."""
    json.dumps(dataclasses.asdict(result), allow_nan=False, default=str)


def rec(result: AnalysisResult, symbol: str = VICTIM) -> Recommendation:
    return next(r for r in result.recommendations if r.symbol == symbol)


# --- the rule on real data ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("timeframe", ["1h", "1d"])
def test_bundled_real_history_has_no_discontinuity(timeframe: str) -> None:
    """The largest real moves (DOGE +390 % in a day in January 2021) stay below the rule's factors."""
    for base in bundled_bases(timeframe):
        arrays = candle_arrays(bundled_candles(base, timeframe))
        assert check_series(arrays, min_candles=MIN_CANDLES) is None
        assert discontinuities(arrays) == [], base


# --- redenomination and relisting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "later"), [(1.0, 0.001), (1000.0, 1.0)], ids=["new-prices-divided", "old-times-1000"]
)
def test_redenomination_is_cut_and_reported(
    universe: Universe, clean: AnalysisResult, before: float, later: float
) -> None:
    victim = redenominated(universe, after=56, before=before, later=later)
    result = run(replaced(universe, SOL=victim))
    assert result.errors == {
        VICTIM: "1h candles: price discontinuity at 2022-10-09T03:00Z (x0.001 between candles); "
        "analysed on the 56 candles after it"
    }
    # The same as a universe in which the victim had only listed at the swap (factors are scale-free).
    listed_at_swap = {"1h": victim["1h"][-56:], "1d": victim["1d"][-1:]}
    reference = run(replaced(universe, SOL=listed_at_swap))
    assert others(result) == others(reference)
    assert rec(result).scores_by_horizon == rec(reference).scores_by_horizon
    assert rec(result).details["candles"] == 56 and rec(result).current_price == victim["1h"][-1].close
    # Levels: the day series breaks inside the swap day, one day is left: the hour series after the swap stands in.
    levels = result.levels[VICTIM]
    assert (levels.calculation_method, levels.data_points_count) == ("levels_1h_fallback", 56)
    price = victim["1h"][-1].close
    assert all(price / 3 < level.price < price * 3 for level in levels.levels)
    assert_publishable(result)


def test_swap_inside_a_candle_drops_that_candle(universe: Universe) -> None:
    hours = [scaled(c, 0.001) if i > LOOKBACK - 56 else c for i, c in enumerate(universe[VICTIM]["1h"])]
    swap = hours[-56]
    hours[-56] = Candle(swap.open_time_ms, swap.open, swap.high, swap.low * 0.001, swap.close * 0.001, swap.volume)
    screened = screen({VICTIM: candle_arrays(hours)}, timeframe="1h", min_candles=MIN_CANDLES)
    assert screened.errors == {
        VICTIM: "1h candles: price discontinuity at 2022-10-09T03:00Z (x0.001 within the candle); "
        "analysed on the 55 candles after it"
    }
    assert screened.series[VICTIM].open_time_ms[0] == hours[-55].open_time_ms


def test_break_too_recent_leaves_the_symbol_out(universe: Universe) -> None:
    victim = redenominated(universe, after=12, before=1.0, later=0.001)
    result = run(replaced(universe, SOL=victim))
    assert result.errors == {
        VICTIM: "1h candles: price discontinuity at 2022-10-10T23:00Z (x0.001 between candles); "
        "left out: 12 candles after it < 35 needed"
    }
    assert dataclasses.replace(result, errors={}) == run(replaced(universe, SOL=None))


def test_relisting_after_a_gap(universe: Universe, clean: AnalysisResult) -> None:
    """Delisted for 40 hours, relisted 4x higher: cut; the same gap without a jump is only missing candles."""
    hours = universe[VICTIM]["1h"]
    kept, relisted = hours[: LOOKBACK - 100], hours[LOOKBACK - 60 :]
    jump = 4 * kept[-1].close / relisted[0].open
    victim = damaged(universe[VICTIM]["1d"], kept + [scaled(c, jump) for c in relisted], since_ms=kept[-1].open_time_ms)
    result = run(replaced(universe, SOL=victim))
    assert result.errors == {
        VICTIM: "1h candles: price discontinuity at 2022-10-08T23:00Z (x4 between candles); "
        "analysed on the 60 candles after it"
    }
    assert rec(result).details["candles"] == 60
    assert_publishable(result)
    only_gap = damaged(universe[VICTIM]["1d"], kept + relisted, since_ms=kept[-1].open_time_ms)
    gapped = run(replaced(universe, SOL=only_gap))
    assert gapped.errors == {} and rec(gapped).details["candles"] == LOOKBACK - 40


# --- stale series -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("missing", "reason"), [(6, "6 h"), (3, "3 h"), (2, None)])
def test_stale_series_is_left_out(universe: Universe, missing: int, reason: str | None) -> None:
    victim = {"1h": universe[VICTIM]["1h"][:-missing], "1d": universe[VICTIM]["1d"]}
    result = run(replaced(universe, SOL=victim))
    if reason is None:  # two candles behind: still in the cross-section
        assert result.errors == {} and rec(result).details["candles"] == LOOKBACK - missing
        return
    assert result.errors == {VICTIM: f"1h candles: stale: last candle closed {reason} before the others"}
    assert dataclasses.replace(result, errors={}) == run(replaced(universe, SOL=None))


# --- unknown and zero volume --------------------------------------------------------------------------------------


def with_volume(candles: Sequence[Candle], volume: Callable[[int, Candle], float]) -> list[Candle]:
    return [dataclasses.replace(c, volume=volume(i, c)) for i, c in enumerate(candles)]


def test_check_series_accepts_unknown_volume_not_unknown_prices(universe: Universe) -> None:
    hours = universe[VICTIM]["1h"]
    assert check_series(candle_arrays(with_volume(hours, lambda i, c: math.nan)), min_candles=MIN_CANDLES) is None
    for price in range(1, 5):  # open, high, low, close
        values = list(dataclasses.astuple(hours[-1]))
        values[price] = math.nan
        broken = [*hours[:-1], Candle(*values)]
        assert check_series(candle_arrays(broken), min_candles=MIN_CANDLES) == "non-positive or non-finite price"


def test_unknown_volume_on_some_candles(universe: Universe, clean: AnalysisResult) -> None:
    holes_1h, holes_1d = {LOOKBACK - 3, LOOKBACK - 10, LOOKBACK - 50, 200}, {LOOKBACK - 2, LOOKBACK - 40}
    victim = {
        "1h": with_volume(universe[VICTIM]["1h"], lambda i, c: math.nan if i in holes_1h else c.volume),
        "1d": with_volume(universe[VICTIM]["1d"], lambda i, c: math.nan if i in holes_1d else c.volume),
    }
    result = run(replaced(universe, SOL=victim))
    assert result.errors == {}
    day = universe[VICTIM]["1h"][-24:]
    known = [c.close * c.volume for i, c in enumerate(day, start=LOOKBACK - 24) if i not in holes_1h]
    assert len(known) == 22 and rec(result).volume_24h == pytest.approx(sum(known) * 24 / 22)  # scaled to 24
    assert "volume_poc" in {s for level in result.levels[VICTIM].levels for s in level.sources}
    assert result.market.total_volume_24h == pytest.approx(sum(r.volume_24h for r in result.recommendations))
    assert short_scores(result) == short_scores(clean)
    assert_publishable(result)


def test_symbol_without_any_known_volume(universe: Universe, clean: AnalysisResult) -> None:
    unknown = {tf: with_volume(candles, lambda i, c: math.nan) for tf, candles in universe[VICTIM].items()}
    result = run(replaced(universe, SOL=unknown))
    victim = rec(result)
    assert result.errors == {} and victim.volume_24h == 0.0 and victim.label is Label.HOLD
    assert victim.details["liquidity_ok"] is False
    assert victim.details["reasons"][-1].startswith("not a buy: 24h quote volume is unknown; needs the minimum ")
    assert {victim.details["factor_scores"][f] for f in ("liquidity", "volume", "obv")} == {None}
    others_volume = sum(r.volume_24h for r in clean.recommendations if r.symbol != VICTIM)
    assert result.market.total_volume_24h == pytest.approx(others_volume)
    assert result.levels[VICTIM].levels and short_scores(result) == short_scores(clean)
    assert_publishable(result)


def test_zero_volume_ranks_lowest_on_liquidity(universe: Universe) -> None:
    silent = {"1h": with_volume(universe[VICTIM]["1h"], lambda i, c: 0.0), "1d": universe[VICTIM]["1d"]}
    result = run(replaced(universe, SOL=silent))
    victim = rec(result)
    assert result.errors == {} and victim.volume_24h == 0.0 and victim.details["liquidity_ok"] is False
    assert victim.details["factor_scores"]["liquidity"] == 0.0
    assert all(r.details["factor_scores"]["liquidity"] > 0 for r in result.recommendations if r is not victim)
    assert victim.details["reasons"][-1].startswith("not a buy: 24h quote volume 0 is below the minimum ")
    assert_publishable(result)


# --- symbols listed yesterday -------------------------------------------------------------------------------------


def test_fresh_listings(universe: Universe) -> None:
    """20 candles: left out; 60 candles: analysed, the factors it lacks count as missing (neutral)."""
    listed = {
        base: {tf: c[-(n if tf == "1h" else n // 24 + 1) :] for tf, c in universe[f"{base}/USDT"].items()}
        for base, n in (("SOL", 60), ("XRP", 20))
    }
    result = run(replaced(universe, **listed))
    assert result.errors == {"XRP/USDT": "1h candles: too few candles: 20 < 35 needed"}
    fresh = rec(result)
    scores, pulls = fresh.details["factor_scores"], fresh.details["contributions"]
    assert fresh.details["candles"] == 60 and result.levels[VICTIM].calculation_method == "levels_1h_fallback"
    assert scores["low_volatility_long"] is None and scores["momentum"] is None  # 168 and 72 candles needed
    assert scores["reversal_1"] is not None and pulls["low_volatility_long"] == 0.0
    assert fresh.total_score == pytest.approx(0.5 + sum(pulls.values()), abs=2e-4)
    assert_publishable(result)


# --- the fit history never spans a break, and detection is causal ---------------------------------------------------


def damaged_series(universe: Universe) -> dict[str, CandleArrays]:
    """Five real 1h series; the victim redenominated in the middle and relisted 5x higher later."""
    series = {s: candle_arrays(universe[s]["1h"]) for s in ("BTC/USDT", "ETH/USDT", "ADA/USDT", "XRP/USDT")}
    hours = universe[VICTIM]["1h"]
    factors = [1.0 if i < 250 else 0.001 if i < 400 else 0.005 for i in range(len(hours))]
    series[VICTIM] = candle_arrays([scaled(c, f) for c, f in zip(hours, factors, strict=True)])
    return series


def test_history_columns_split_at_breaks(universe: Universe) -> None:
    series = damaged_series(universe)
    columns = history_columns(series)
    assert [len(columns[c]) for c in (VICTIM, f"{VICTIM}#2", f"{VICTIM}#3")] == [250, 150, 100]
    history = factor_history(columns, timeframe="1h")
    unsplit = factor_history(series, timeframe="1h")
    for candles in (1, 4, 24):
        assert np.nanmax(np.abs(history.forward_returns(candles))) < math.log(2)  # real moves only
        assert np.nanmax(np.abs(unsplit.forward_returns(candles))) > math.log(100)  # what splitting prevents
    first_rows = [
        np.searchsorted(history.open_time_ms, columns[c].open_time_ms[0]) for c in (f"{VICTIM}#2", f"{VICTIM}#3")
    ]
    reversal = history.scores[0]  # reversal_1 reads the previous close
    for label, row in zip((f"{VICTIM}#2", f"{VICTIM}#3"), first_rows, strict=True):
        column = history.columns.index(label)
        assert np.isnan(reversal[row, column]) and np.isfinite(reversal[row + 1, column])
        assert np.all(np.isnan(history.log_close[:row, column]))


def test_detection_is_causal(universe: Universe) -> None:
    """Appending candles never changes a decision about earlier ones, nor the segments before them."""
    arrays = damaged_series(universe)[VICTIM]
    full = discontinuities(arrays)
    assert [d.index for d in full] == [250, 400]
    full_segments = split_at_discontinuities(arrays)
    for n in range(2, len(arrays) + 1, 7):
        assert discontinuities(arrays[:n]) == [d for d in full if d.index < n]
        for prefix, whole in zip(split_at_discontinuities(arrays[:n]), full_segments, strict=False):
            assert np.array_equal(prefix.close, whole.close[: len(prefix)])


def test_ticker_change_spanning_a_recent_break_is_not_used(universe: Universe) -> None:
    """On 15-minute candles a symbol can be analysed a few hours after a break: the ticker's 24h change spans it."""
    quarter_ms = 15 * 60_000

    def quarters(candles: Sequence[Candle]) -> list[Candle]:
        return [dataclasses.replace(c, open_time_ms=i * quarter_ms) for i, c in enumerate(candles)]

    cut = quarters([scaled(c, 0.001 if i >= 60 else 1.0) for i, c in enumerate(universe[VICTIM]["1h"][-100:])])
    whole = quarters(universe["ETH/USDT"]["1h"][-100:])
    screened = screen({VICTIM: candle_arrays(cut), "ETH/USDT": candle_arrays(whole)}, timeframe="15m", min_candles=35)
    assert screened.cut == {VICTIM} and len(screened.series[VICTIM]) == 40  # 10 hours after the break
    tickers = {
        s: Ticker(s, last=1.0, timestamp_ms=0, change_24h_pct=-99.9, quote_volume_24h=5.0) for s in (VICTIM, "ETH/USDT")
    }
    kept = tickers_after_breaks(tickers, screened, timeframe="15m")
    assert kept[VICTIM].change_24h_pct is None and kept[VICTIM].quote_volume_24h == 5.0
    assert kept["ETH/USDT"] == tickers["ETH/USDT"]


# --- everything at once -------------------------------------------------------------------------------------------


def test_a_bad_day_publishes_only_finite_values(universe: Universe) -> None:
    bad = replaced(
        universe,
        SOL=redenominated(universe, after=56, before=1.0, later=0.001),
        XRP={"1h": universe["XRP/USDT"]["1h"][:-6], "1d": universe["XRP/USDT"]["1d"]},
        ADA={tf: with_volume(c, lambda i, x: math.nan) for tf, c in universe["ADA/USDT"].items()},
        DOGE={tf: with_volume(c, lambda i, x: 0.0) for tf, c in universe["DOGE/USDT"].items()},
        DOT={tf: c[-(40 if tf == "1h" else 2) :] for tf, c in universe["DOT/USDT"].items()},
    )
    result = run(bad)
    assert set(result.errors) == {VICTIM, "XRP/USDT"}
    assert len(result.recommendations) == len(universe) - 1
    assert math.isfinite(result.market.total_volume_24h) and math.isfinite(result.market.average_volatility)
    assert_publishable(result)
