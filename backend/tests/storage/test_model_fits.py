"""ModelRepository on SQLite and PostgreSQL: one row per exchange and horizon, upserted, decoded back exactly."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from structlog.testing import capture_logs

from app.domain import HorizonModel
from app.storage.model_fits import ModelRepository
from app.storage.models import ModelFitModel
from tests.support.storage import StorageBackend

FITTED_AT = datetime(2022, 6, 1, 12, tzinfo=UTC)


def _model(horizon: str, candles: int, *, fitted_at: datetime = FITTED_AT, ic: float = 0.04) -> HorizonModel:
    return HorizonModel(
        horizon=horizon,
        candles=candles,
        weights={"reversal_1": 0.6, "low_volatility": 0.4},
        weights_source="fitted",
        fitted_at=fitted_at,
        fit_start=fitted_at - timedelta(days=60),
        fit_end=fitted_at - timedelta(hours=candles),
        cross_sections=1440,
        walk_forward_ic=ic,
        walk_forward_t=3.1,
        calibration=((0.05, 0.46), (0.95, 0.55)),
        calibration_samples=40_000,
        labels_active=True,
    )


def _save(backend: StorageBackend, exchange: str, models: dict[str, HorizonModel]) -> None:
    with backend.session_factory() as session:
        ModelRepository(session).save(exchange=exchange, models=models)
        session.commit()


def test_saved_models_load_back_exactly_per_exchange(backend: StorageBackend) -> None:
    models = {"1h": _model("1h", 1), "24h": _model("24h", 24)}
    _save(backend, "binance", models)
    _save(backend, "upbit", {"1h": _model("1h", 1, ic=-0.01)})
    with backend.session_factory() as session:
        repository = ModelRepository(session)
        assert repository.load(exchange="binance") == models
        assert repository.load(exchange="upbit")["1h"].walk_forward_ic == -0.01
        assert repository.fitted_at_by_horizon(exchange="binance") == {"1h": FITTED_AT, "24h": FITTED_AT}
        assert repository.load(exchange="okx") == {} and repository.fitted_at_by_horizon(exchange="okx") == {}


def test_a_newer_fit_replaces_the_stored_one(backend: StorageBackend) -> None:
    _save(backend, "binance", {"1h": _model("1h", 1), "4h": _model("4h", 4)})
    later = FITTED_AT + timedelta(days=1)
    _save(backend, "binance", {"1h": _model("1h", 1, fitted_at=later, ic=0.07)})
    with backend.session_factory() as session:
        repository = ModelRepository(session)
        loaded = repository.load(exchange="binance")
        assert loaded["1h"] == _model("1h", 1, fitted_at=later, ic=0.07)
        assert loaded["4h"] == _model("4h", 4)
        assert repository.fitted_at_by_horizon(exchange="binance") == {"1h": later, "4h": FITTED_AT}


def test_an_unreadable_row_is_left_out_and_logged(backend: StorageBackend) -> None:
    _save(backend, "binance", {"1h": _model("1h", 1), "4h": _model("4h", 4)})
    with backend.session_factory() as session:
        session.execute(update(ModelFitModel).where(ModelFitModel.horizon == "4h").values(model={"horizon": "4h"}))
        session.commit()
    with capture_logs() as logs, backend.session_factory() as session:
        loaded = ModelRepository(session).load(exchange="binance")
    assert list(loaded) == ["1h"]
    assert [(e["event"], e["horizon"]) for e in logs] == [("model_fit_unreadable", "4h")]


def test_only_models_with_a_fit_time_are_stored(backend: StorageBackend) -> None:
    with backend.session_factory() as session, pytest.raises(ValueError, match="no fitted_at"):
        ModelRepository(session).save(exchange="binance", models={"1h": replace(_model("1h", 1), fitted_at=None)})
