"""Indicators against plain-loop reference implementations on real data, hand-checked tables, and causality."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import pytest

from app.analysis import indicators as ind
from tests.support.candles import bundled_candles, candle_rows

FloatArray = ind.FloatArray


def load_ohlcv(base: str, timeframe: str = "1h") -> dict[str, FloatArray]:
    """Real bundled candles of one pair as columns: time, open, high, low, close, volume."""
    rows = np.array(candle_rows(bundled_candles(base, timeframe)), dtype=np.float64)
    return {name: rows[:, i] for i, name in enumerate(("time", "open", "high", "low", "close", "volume"))}


@pytest.fixture(scope="module")
def btc() -> dict[str, FloatArray]:
    return load_ohlcv("BTC")


# --- plain-loop references (no numpy/pandas, no code under test) -----------------------------------------


def ref_seeded(values: list[float], alpha: float, seed_len: int) -> list[float]:
    out = [math.nan] * len(values)
    if len(values) < seed_len:
        return out
    y = sum(values[:seed_len]) / seed_len
    out[seed_len - 1] = y
    for t in range(seed_len, len(values)):
        y = (1 - alpha) * y + alpha * values[t]
        out[t] = y
    return out


def ref_ema(values: list[float], span: int) -> list[float]:
    return ref_seeded(values, 2 / (span + 1), span)


def ref_rsi(close: list[float], period: int = 14) -> list[float]:
    out = [math.nan] * len(close)
    gains = [max(close[t] - close[t - 1], 0.0) for t in range(1, len(close))]
    losses = [max(close[t - 1] - close[t], 0.0) for t in range(1, len(close))]
    avg_gain = sum(gains[:period]) / period
    avg_loss = sum(losses[:period]) / period
    for t in range(period, len(close)):
        if t > period:
            avg_gain = (avg_gain * (period - 1) + gains[t - 1]) / period
            avg_loss = (avg_loss * (period - 1) + losses[t - 1]) / period
        if avg_gain + avg_loss == 0:
            out[t] = 50.0
        elif avg_loss == 0:
            out[t] = 100.0
        else:
            out[t] = 100 - 100 / (1 + avg_gain / avg_loss)
    return out


def ref_macd(close: list[float]) -> tuple[list[float], list[float]]:
    fast, slow = ref_ema(close, 12), ref_ema(close, 26)
    line = [f - s for f, s in zip(fast, slow, strict=True)]
    signal = [math.nan] * 25 + ref_ema(line[25:], 9)
    return line, signal


def ref_percent_b(close: list[float], period: int = 20) -> list[float]:
    out = [math.nan] * len(close)
    for t in range(period - 1, len(close)):
        window = close[t - period + 1 : t + 1]
        mean = sum(window) / period
        std = math.sqrt(sum((x - mean) ** 2 for x in window) / period)
        out[t] = (close[t] - (mean - 2 * std)) / (4 * std) if std > 0 else 0.5
    return out


def ref_atr(high: list[float], low: list[float], close: list[float], period: int = 14) -> list[float]:
    tr = [high[0] - low[0]]
    for t in range(1, len(close)):
        tr.append(max(high[t] - low[t], abs(high[t] - close[t - 1]), abs(low[t] - close[t - 1])))
    return ref_seeded(tr, 1 / period, period)


# --- golden tests ---------------------------------------------------------------------------------------


def test_rsi_matches_wilder_loop(btc: dict[str, FloatArray]) -> None:
    np.testing.assert_allclose(ind.rsi_wilder(btc["close"]), ref_rsi(btc["close"].tolist()), rtol=1e-9)


def test_macd_and_signal_match_loop(btc: dict[str, FloatArray]) -> None:
    lines = ind.macd(btc["close"])
    line, signal = ref_macd(btc["close"].tolist())
    np.testing.assert_allclose(lines.macd, line, rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(lines.signal, signal, rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(lines.histogram, np.array(line) - np.array(signal), atol=1e-8)
    assert np.isnan(lines.histogram[32]) and np.isfinite(lines.histogram[33])


def test_percent_b_matches_loop(btc: dict[str, FloatArray]) -> None:
    np.testing.assert_allclose(ind.bollinger_percent_b(btc["close"]), ref_percent_b(btc["close"].tolist()), rtol=1e-9)


def test_atr_matches_loop(btc: dict[str, FloatArray]) -> None:
    expected = ref_atr(btc["high"].tolist(), btc["low"].tolist(), btc["close"].tolist())
    np.testing.assert_allclose(ind.atr(btc["high"], btc["low"], btc["close"]), expected, rtol=1e-9)


def test_volume_ratio_and_volatility_match_loop(btc: dict[str, FloatArray]) -> None:
    volume, close = btc["volume"].tolist(), btc["close"].tolist()
    t = len(close) - 1
    assert ind.volume_ratio(btc["volume"])[t] == pytest.approx(volume[t] / (sum(volume[t - 20 : t]) / 20))
    returns = [math.log(close[i] / close[i - 1]) for i in range(t - 23, t + 1)]
    mean = sum(returns) / 24
    expected_sigma = math.sqrt(sum((r - mean) ** 2 for r in returns) / 23)
    assert ind.realised_volatility(btc["close"])[t] == pytest.approx(expected_sigma)
    assert ind.price_change_pct(btc["close"], periods=24)[t] == pytest.approx((close[t] / close[t - 24] - 1) * 100)


@pytest.mark.parametrize(
    ("close", "period", "expected_last"),
    [
        ([float(x) for x in range(1, 17)], 14, 100.0),  # only gains
        ([float(x) for x in range(16, 0, -1)], 14, 0.0),  # only losses
        ([5.0] * 16, 14, 50.0),  # flat
        ([10.0, 12.0, 11.0], 2, 100 * 1.0 / 1.5),  # avg gain 1, avg loss 0.5
        ([10.0, 12.0, 11.0, 14.0], 2, 100 * 2.0 / 2.25),  # gain (1 + 3) / 2 = 2, loss (0.5 + 0) / 2 = 0.25
    ],
)
def test_rsi_hand_checked(close: list[float], period: int, expected_last: float) -> None:
    rsi = ind.rsi_wilder(np.array(close), period=period)
    assert rsi[-1] == pytest.approx(expected_last)
    assert np.isnan(rsi[:period]).all()


# --- causality ------------------------------------------------------------------------------------------

INDICATORS: dict[str, Callable[[Mapping[str, FloatArray]], FloatArray]] = {
    "ema": lambda d: ind.ema(d["close"], span=20),
    "rsi": lambda d: ind.rsi_wilder(d["close"]),
    "macd": lambda d: ind.macd(d["close"]).macd,
    "macd_signal": lambda d: ind.macd(d["close"]).signal,
    "macd_hist": lambda d: ind.macd(d["close"]).histogram,
    "percent_b": lambda d: ind.bollinger_percent_b(d["close"]),
    "atr": lambda d: ind.atr(d["high"], d["low"], d["close"]),
    "volume_ratio": lambda d: ind.volume_ratio(d["volume"]),
    "volatility": lambda d: ind.realised_volatility(d["close"]),
    "change": lambda d: ind.price_change_pct(d["close"], periods=24),
    "rolling_max": lambda d: ind.rolling_max(d["high"], window=30),
    "ema_distance": lambda d: ind.ema_distance_pct(d["close"], span=50),
    "volume_zscore": lambda d: ind.volume_zscore(d["volume"]),
    "obv": lambda d: ind.obv(d["close"], d["volume"]),
    "momentum": lambda d: ind.momentum(d["close"], periods=72),
    "drawdown": lambda d: ind.drawdown(d["high"], d["close"], window=30),
}

# name -> (first valid index, relative tolerance at the end of the series when the input starts 400 candles later:
# 0 for windowed indicators (exactly equal), small for recursive ones whose seed is forgotten geometrically).
WARM_UP: dict[str, tuple[int, float]] = {
    "ema": (19, 1e-9),
    "rsi": (14, 1e-9),
    "macd": (25, 1e-9),
    "macd_signal": (33, 1e-9),
    "macd_hist": (33, 1e-6),
    "percent_b": (19, 0.0),
    "atr": (13, 1e-9),
    "volume_ratio": (20, 0.0),
    "volatility": (24, 0.0),
    "change": (24, 0.0),
    "rolling_max": (29, 0.0),
    "ema_distance": (49, 1e-9),
    "volume_zscore": (20, 0.0),
    "obv": (0, math.inf),  # a running sum: its level depends on the start, only its differences do not
    "momentum": (72, 0.0),
    "drawdown": (29, 0.0),
}


@pytest.mark.parametrize("name", sorted(INDICATORS))
@pytest.mark.parametrize("n", [10, 34, 35, 120, 999])
def test_prefix_gives_identical_values(btc: dict[str, FloatArray], name: str, n: int) -> None:
    full = INDICATORS[name](btc)
    prefix = INDICATORS[name]({key: column[:n] for key, column in btc.items()})
    assert prefix.shape == (n,)
    np.testing.assert_array_equal(prefix, full[:n])


@pytest.mark.parametrize("name", sorted(INDICATORS))
def test_matrix_columns_equal_single_series(name: str) -> None:
    eth, doge = load_ohlcv("ETH"), load_ohlcv("DOGE")
    short = 300  # DOGE's column is shorter: right-aligned with leading NaN
    matrix = {
        key: np.column_stack((eth[key], np.concatenate((np.full(eth[key].size - short, np.nan), doge[key][-short:]))))
        for key in eth
    }
    both = INDICATORS[name](matrix)
    np.testing.assert_allclose(both[:, 0], INDICATORS[name](eth), rtol=1e-12, atol=1e-12)
    alone = INDICATORS[name]({key: column[-short:] for key, column in doge.items()})
    np.testing.assert_allclose(both[-short:, 1], alone, rtol=1e-12, atol=1e-12)


def test_swings_are_confirmed_after_k_bars_and_never_repaint(btc: dict[str, FloatArray]) -> None:
    k = 3
    full = ind.swing_points(btc["high"], btc["low"], k=k)
    assert full.lows.size > 50 and full.highs.size > 50
    for n in (7, 50, 333, 1000, btc["close"].size):
        prefix = ind.swing_points(btc["high"][:n], btc["low"][:n], k=k)
        np.testing.assert_array_equal(prefix.lows, full.lows[full.lows <= n - 1 - k])
        np.testing.assert_array_equal(prefix.highs, full.highs[full.highs <= n - 1 - k])
    for i in full.lows[:20]:
        window = btc["low"][i - k : i + k + 1]
        assert btc["low"][i] == window.min()
    for i in full.highs[:20]:
        assert btc["high"][i] == btc["high"][i - k : i + k + 1].max()


def test_short_inputs_are_all_nan() -> None:
    close = np.array([1.0, 2.0, 3.0])
    for values in (
        ind.rsi_wilder(close),
        ind.macd(close).histogram,
        ind.bollinger_percent_b(close),
        ind.ema(close, span=5),
    ):
        assert values.shape == (3,) and np.isnan(values).all()
    assert ind.swing_points(close, close).lows.size == 0


@pytest.mark.parametrize("name", sorted(INDICATORS))
def test_warm_up_is_nan_then_finite_and_forgets_the_start(btc: dict[str, FloatArray], name: str) -> None:
    first_valid, tolerance = WARM_UP[name]
    values = INDICATORS[name](btc)
    assert np.isnan(values[:first_valid]).all() and np.isfinite(values[first_valid:]).all()
    later = INDICATORS[name]({key: column[400:] for key, column in btc.items()})
    if math.isinf(tolerance):  # OBV: equal differences
        np.testing.assert_allclose(np.diff(later[-100:]), np.diff(values[-100:]), rtol=1e-9)
    elif tolerance == 0.0:
        np.testing.assert_array_equal(later[-100:], values[-100:])
    else:
        np.testing.assert_allclose(later[-100:], values[-100:], rtol=tolerance, atol=1e-9)


def test_new_indicators_match_loops(btc: dict[str, FloatArray]) -> None:
    close, high, volume = btc["close"].tolist(), btc["high"].tolist(), btc["volume"].tolist()
    t = len(close) - 1
    ema50 = ref_ema(close, 50)
    assert ind.ema_distance_pct(btc["close"], span=50)[t] == pytest.approx((close[t] / ema50[t] - 1) * 100)
    previous = volume[t - 20 : t]
    mean = sum(previous) / 20
    std = math.sqrt(sum((v - mean) ** 2 for v in previous) / 20)
    assert ind.volume_zscore(btc["volume"])[t] == pytest.approx((volume[t] - mean) / std)
    running = 0.0
    for i in range(1, len(close)):
        running += volume[i] if close[i] > close[i - 1] else -volume[i] if close[i] < close[i - 1] else 0.0
    assert ind.obv(btc["close"], btc["volume"])[t] == pytest.approx(running, rel=1e-9)
    assert ind.momentum(btc["close"], periods=72)[t] == pytest.approx(math.log(close[t] / close[t - 72]))
    assert ind.drawdown(btc["high"], btc["close"], window=30)[t] == pytest.approx(
        1 - close[t] / max(high[t - 29 : t + 1])
    )


@pytest.mark.parametrize(
    ("close", "volume", "expected"),
    [
        ([1.0, 2.0, 1.0, 1.0, 3.0], [5.0, 10.0, 20.0, 30.0, 40.0], [0.0, 10.0, -10.0, -10.0, 30.0]),
        ([5.0, 4.0, 3.0], [1.0, 2.0, 3.0], [0.0, -2.0, -5.0]),
    ],
)
def test_obv_hand_checked(close: list[float], volume: list[float], expected: list[float]) -> None:
    np.testing.assert_array_equal(ind.obv(np.array(close), np.array(volume)), expected)


def test_volume_zscore_flat_history_is_zero() -> None:
    z = ind.volume_zscore(np.array([2.0] * 21 + [5.0]), period=20)
    assert np.isnan(z[:20]).all() and z[20] == 0.0 and z[21] == 0.0
