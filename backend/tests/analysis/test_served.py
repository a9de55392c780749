"""``refit``: the one fit the worker and the evaluation run, on the newest ``history_candles`` of each usable series."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from app.analysis import FitSettings
from app.analysis.options import AnalysisOptions
from app.analysis.served import NO_SERIES_NOTE, refit
from app.domain import Candle, default_horizons
from tests.support.candles import bundled_candles

FITTED_AT = datetime(2022, 6, 1, tzinfo=UTC)
OPTIONS = AnalysisOptions(
    analysis_timeframe="1h",
    levels_timeframe="1d",
    lookback_candles=300,
    horizons=default_horizons("1h"),
    default_horizon="1h",
    fit=FitSettings(window_candles=5 * 24, min_cross_sections=2 * 24, calibration_min_per_bin=20),
    refit_interval_s=86_400.0,
)
BASES = ("BTC", "ETH", "SOL", "ADA", "XRP", "DOGE")


def candles(count: int, *, garbage_before: int = 0) -> dict[str, list[Candle]]:
    """The ``count`` real 1h candles before the 1000th of each pair, the first ``garbage_before`` priced x 1e9."""
    out = {}
    for base in BASES:
        series = list(bundled_candles(base, "1h")[1000 - count : 1000])
        garbage = [replace(c, open=c.open * 1e9, high=c.high * 1e9, low=c.low * 1e9, close=c.close * 1e9)
                   for c in series[:garbage_before]]  # fmt: skip
        out[f"{base}/USDT"] = garbage + series[garbage_before:]
    return out


def test_refit_reads_only_the_newest_history_candles_and_fits_every_horizon() -> None:
    assert OPTIONS.history_candles == 5 * 24 + 24 + 200
    models = refit(candles(900, garbage_before=900 - OPTIONS.history_candles), OPTIONS, fitted_at=FITTED_AT)
    assert models == refit(candles(OPTIONS.history_candles), OPTIONS, fitted_at=FITTED_AT)
    assert models != refit(candles(OPTIONS.history_candles - 150), OPTIONS, fitted_at=FITTED_AT)
    assert list(models) == ["1h", "4h", "24h"]
    assert all(m.weights_source == "fitted" and m.cross_sections == 5 * 24 for m in models.values())
    assert all(m.fitted_at == FITTED_AT for m in models.values())


def test_unusable_series_are_left_out_and_without_any_the_prior_is_served() -> None:
    short = {"NEW/USDT": list(bundled_candles("BTC", "1h")[:20])}
    assert refit(candles(400) | short, OPTIONS, fitted_at=FITTED_AT) == refit(
        candles(400), OPTIONS, fitted_at=FITTED_AT
    )
    prior = refit(short, OPTIONS, fitted_at=FITTED_AT)
    assert all(m.weights_source == "prior" and m.note == NO_SERIES_NOTE and not m.labels_active for m in prior.values())


def test_pinned_weights_are_measured_not_fitted() -> None:
    pinned = replace(OPTIONS, pinned_weights={"4h": {"reversal_1": 1.0}})
    models = refit(candles(500), pinned, fitted_at=FITTED_AT)
    assert models["4h"].weights_source == "configured" and models["4h"].weights["reversal_1"] == 1.0
    assert models["1h"].weights_source == "fitted"
