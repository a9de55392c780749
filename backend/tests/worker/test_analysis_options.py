"""DANTARO_FACTOR_WEIGHTS and the liquidity gate reach the analysis, and bad values say what to fix."""

from __future__ import annotations

import pytest

from app.analysis.factors import default_weights
from app.config import Settings
from app.domain import timeframe_ms
from app.worker.analysis_options import factor_weights, liquidity_gate


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_defaults_are_the_timeframes_weights() -> None:
    assert factor_weights(_settings()) == default_weights(timeframe_ms("1h"))


def test_overrides_replace_one_factor_at_a_time() -> None:
    weights = factor_weights(_settings(factor_weights={"momentum": 0.9}))
    base = default_weights(timeframe_ms("1h"))
    assert weights.momentum == 0.9
    assert {k: v for k, v in weights.as_dict().items() if k != "momentum"} == {
        k: v for k, v in base.as_dict().items() if k != "momentum"
    }


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"moon": 1.0}, "unknown factors ['moon']"),
        ({"rsi": "high"}, "every weight must be a number"),
        ({"rsi": True}, "every weight must be a number"),
        ({"rsi": -1.0}, "non-negative"),
    ],
)
def test_bad_weights_are_refused_with_the_setting_named(weights: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match="DANTARO_FACTOR_WEIGHTS") as info:
        factor_weights(_settings(factor_weights=weights))
    assert message in str(info.value)


def test_liquidity_gate_from_settings() -> None:
    gate = liquidity_gate(_settings(liquidity_min_quote_volume=1e6, liquidity_min_share_of_median=0.1))
    assert gate.threshold([1e6, 2e7, 3e7]) == pytest.approx(2e6)
    assert gate.threshold([1.0, 2.0]) == 1e6
