"""The served analysis configuration from the settings: horizons, pinned weights, fit window, liquidity gate."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.config import Settings
from app.worker.analysis_options import analysis_options, liquidity_gate


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_defaults_serve_three_horizons_and_fit_everything() -> None:
    options = analysis_options(_settings())
    assert [(h.name, h.candles) for h in options.horizons] == [("1h", 1), ("4h", 4), ("24h", 24)]
    assert options.default_horizon == "1h" and options.pinned_weights == {}
    assert (options.fit.window_candles, options.fit.min_cross_sections) == (60 * 24, 14 * 24)
    assert options.history_candles == 60 * 24 + 24 + 200


@pytest.mark.parametrize(
    ("values", "names", "default"),
    [
        ({"horizons": "2,12", "default_horizon": "12h"}, ["2h", "12h"], "12h"),
        ({"analysis_timeframe": "1d", "timeframes": "1h,1d"}, ["1d", "3d", "7d"], "1d"),
        ({"horizons": "24,1"}, ["1h", "24h"], "1h"),
    ],
)
def test_horizons_from_settings(values: dict[str, object], names: list[str], default: str) -> None:
    options = analysis_options(_settings(**values))
    assert [h.name for h in options.horizons] == names and options.default_horizon == default


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"default_horizon": "7d"}, "default_horizon '7d' is not a served horizon"),
        ({"horizons": "1,soon"}, "horizons must be whole numbers of candles"),
        ({"horizons": "0"}, "positive number"),
    ],
)
def test_bad_horizons_say_what_to_fix(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _settings(**values)


def test_flat_weights_pin_every_horizon_and_nested_ones_pin_theirs() -> None:
    flat = analysis_options(_settings(factor_weights={"rsi": 3, "drawdown": 1})).pinned_weights
    assert set(flat) == {"1h", "4h", "24h"} and flat["4h"]["rsi"] == 0.75 and flat["4h"]["drawdown"] == 0.25
    nested = analysis_options(_settings(factor_weights={"24h": {"low_volatility": 1}})).pinned_weights
    assert set(nested) == {"24h"} and nested["24h"]["low_volatility"] == 1.0


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"moon": 1.0}, "unknown factors ['moon']"),
        ({"rsi": "high"}, "every weight must be a number"),
        ({"rsi": True}, "every weight must be a number"),
        ({"rsi": -1.0}, "non-negative"),
        ({"2h": {"rsi": 1.0}}, "unknown horizons ['2h']"),
    ],
)
def test_bad_weights_are_refused_with_the_setting_named(weights: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match="DANTARO_FACTOR_WEIGHTS") as info:
        analysis_options(_settings(factor_weights=weights))
    assert message in str(info.value)


def test_liquidity_gate_from_settings() -> None:
    gate = liquidity_gate(_settings(liquidity_min_quote_volume=1e6, liquidity_min_share_of_median=0.1))
    assert gate.threshold([1e6, 2e7, 3e7]) == pytest.approx(2e6)
    assert gate.threshold([1.0, 2.0]) == 1e6
