"""Which stored models are served, when they are stale, and when a refit is due (hand-made models, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.config import Settings
from app.domain import HorizonModel
from app.worker.analysis_options import analysis_options
from app.worker.served_models import STALE_INTERVALS, refit_due, usable, usable_models, with_staleness

FITTED_AT = datetime(2022, 6, 1, tzinfo=UTC)
DAY_S = 86_400


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _model(name: str, candles: int, *, source: str = "fitted", weights: dict[str, float] | None = None) -> HorizonModel:
    return HorizonModel(
        horizon=name,
        candles=candles,
        weights=weights or {"reversal_1": 0.7, "rsi": 0.3},
        weights_source=source,
        fitted_at=FITTED_AT,
        note="" if source != "prior" else "labels are HOLD: too little history",
    )


STORED = {"1h": _model("1h", 1), "4h": _model("4h", 4), "24h": _model("24h", 24)}


@pytest.mark.parametrize(
    ("model", "candles", "pinned", "expected"),
    [
        (_model("1h", 1), 1, None, True),
        (_model("1h", 1, source="prior"), 1, None, True),
        (_model("1h", 1), 2, None, False),  # the horizon's length changed
        (_model("1h", 1, source="configured"), 1, None, False),  # weights were pinned, no longer are
        (_model("1h", 1), 1, {"rsi": 1.0}, False),  # weights are pinned now
        (_model("1h", 1, source="configured", weights={"rsi": 1.0}), 1, {"rsi": 1.0}, True),
        (_model("1h", 1, source="configured", weights={"rsi": 0.99995}), 1, {"rsi": 1.0}, True),  # rounding
        (_model("1h", 1, source="configured", weights={"rsi": 1.0}), 1, {"rsi": 0.5, "macd": 0.5}, False),
    ],
)
def test_usable_models_match_the_configuration(
    model: HorizonModel, candles: int, pinned: dict[str, float] | None, expected: bool
) -> None:
    assert usable(model, candles=candles, pinned=pinned) is expected


def test_only_usable_models_of_served_horizons_are_served() -> None:
    options = analysis_options(Settings(_env_file=None, horizons=["1", "4"], factor_weights={"4h": {"rsi": 1}}))
    stored = {**STORED, "4h": _model("4h", 4, source="configured", weights={"rsi": 1.0})}
    assert usable_models(stored, options) == {"1h": stored["1h"], "4h": stored["4h"]}
    assert usable_models(STORED, options) == {"1h": STORED["1h"]}


def test_a_refit_is_due_without_usable_models_or_after_one_interval() -> None:
    options = analysis_options(Settings(_env_file=None, refit_interval_s=DAY_S))
    soon, later = _ms(FITTED_AT + timedelta(hours=23)), _ms(FITTED_AT + timedelta(days=1))
    assert refit_due(STORED, options, now_ms=soon) is None
    assert "a refit interval ago" in (refit_due(STORED, options, now_ms=later) or "")
    assert refit_due({}, options, now_ms=soon) == "no usable stored model for 1h, 4h, 24h"
    without_4h = {name: model for name, model in STORED.items() if name != "4h"}
    assert refit_due(without_4h, options, now_ms=soon) == "no usable stored model for 4h"


def test_a_model_older_than_three_intervals_is_served_with_a_stale_note() -> None:
    prior = _model("1h", 1, source="prior")
    edge = _ms(FITTED_AT + timedelta(days=STALE_INTERVALS))
    assert with_staleness(prior, now_ms=edge, refit_interval_s=DAY_S) == prior
    stale = with_staleness(prior, now_ms=edge + 3_600_000, refit_interval_s=DAY_S)
    assert stale.weights == prior.weights and stale.labels_active == prior.labels_active
    assert stale.note.startswith(prior.note + "; stale: fitted at 2022-06-01T00:00:00+00:00, 73 h before this run")
    assert with_staleness(STORED["1h"], now_ms=edge + 1, refit_interval_s=DAY_S).note.startswith("stale: ")
