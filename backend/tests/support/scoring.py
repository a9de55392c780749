"""A replay worker whose runs the track-record tests score: real bundled pairs, fitted-looking stored models with
labels on (so every label is served), and readers of what the scorer stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.config import Settings
from app.domain import HorizonModel, RunScore, ms_to_datetime
from app.exchange import build_source
from app.storage.cache import SnapshotCache
from app.storage.model_fits import ModelRepository
from app.storage.models import AnalysisRunModel, RunScoreModel, SymbolOutcomeModel
from app.storage.repositories import CandleRepository
from app.storage.track_record import TrackRecordRepository
from app.worker.analysis_options import analysis_options
from app.worker.cycle import ExchangeCycle
from app.worker.service import Worker
from app.worker.track_record import RunScorer
from tests.support.storage import StorageBackend

SCORED_BASES = ("BTC", "ETH", "SOL", "XRP", "ADA", "DOGE", "LTC")
HOUR = timedelta(hours=1)


def settings_for(backend: StorageBackend, replay_dir: Path, **values: Any) -> Settings:
    return Settings(
        _env_file=None,
        database_url=backend.url,
        replay_data_dir=replay_dir,
        replay_warmup_candles=120,
        lookback_candles=200,
        **values,
    )


def store_active_models(backend: StorageBackend, settings: Settings) -> None:
    """Fitted models with labels on (a steep calibration), so the runs serve every label."""
    fitted_at = datetime(2020, 1, 1, tzinfo=UTC)
    models = {
        h.name: HorizonModel(
            horizon=h.name,
            candles=h.candles,
            weights={"reversal_1": 0.5, "low_volatility": 0.5},
            weights_source="fitted",
            fitted_at=fitted_at,
            calibration=((0.0, 0.2), (1.0, 0.8)),
            calibration_samples=1000,
            labels_active=True,
        )
        for h in settings.served_horizons
    }
    with backend.session_factory() as session:
        ModelRepository(session).save(exchange="binance", models=models)
        session.commit()


class Deployment:
    """One replay worker on the test database; ``cycles(n)`` publishes n runs one candle apart."""

    def __init__(self, backend: StorageBackend, replay_dir: Path, cache: SnapshotCache | None = None) -> None:
        self.backend = backend
        self.settings = settings_for(backend, replay_dir)
        store_active_models(backend, self.settings)
        self.source = build_source(self.settings, "binance", resume_from_ms=None)
        self.cycle = ExchangeCycle(
            source=self.source, settings=self.settings, session_factory=backend.session_factory, cache=cache
        )
        self.worker = Worker(
            settings=self.settings, engine=backend.engine, session_factory=backend.session_factory, cycles=[self.cycle]
        )

    async def cycles(self, count: int) -> None:
        for _ in range(count):
            outcome = await self.cycle.run_once()
            assert outcome.symbols_ok == len(SCORED_BASES)

    def scorer(self, **values: Any) -> RunScorer:
        options = analysis_options(self.settings)
        return RunScorer(exchange="binance", options=options, session_factory=self.backend.session_factory, **values)

    def stored_until(self) -> datetime:
        with self.backend.session_factory() as session:
            latest = CandleRepository(session).latest_open_time_ms(exchange="binance", timeframe="1h")
        assert latest is not None
        return ms_to_datetime(latest) + HOUR

    def runs(self) -> list[tuple[str, datetime]]:
        with self.backend.session_factory() as session:
            rows = session.execute(
                select(AnalysisRunModel.run_id, AnalysisRunModel.data_as_of).order_by(AnalysisRunModel.data_as_of)
            )
            return [(run_id, as_of) for run_id, as_of in rows]

    def scores(self) -> list[RunScore]:
        with self.backend.session_factory() as session:
            repository = TrackRecordRepository(session)
            horizons = [h.name for h in self.settings.served_horizons]
            return [s for h in horizons for s in repository.scores(exchange="binance", horizon=h)]

    def rows(self, *, with_scored_at: bool = True) -> list[tuple[Any, ...]]:
        """Every stored track-record row, as plain tuples in key order."""
        with self.backend.session_factory() as session:
            scores = session.execute(select(RunScoreModel).order_by(RunScoreModel.run_id, RunScoreModel.horizon))
            outcomes = session.execute(
                select(SymbolOutcomeModel).order_by(
                    SymbolOutcomeModel.run_id, SymbolOutcomeModel.horizon, SymbolOutcomeModel.symbol
                )
            )
            skip = set() if with_scored_at else {"scored_at"}
            return [
                tuple(getattr(row, c.key) for c in row.__table__.columns if c.key not in skip)
                for row in [*scores.scalars(), *outcomes.scalars()]
            ]

    async def close(self) -> None:
        await self.source.close()
