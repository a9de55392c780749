"""Scoring windows on stored real candles: a missing candle or a price discontinuity excludes the symbol with its
reason (the rest is scored as the independent recomputation says), and a horizon waits for its window's last candle
of every symbol, or for a later candle when a symbol's never came."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from sqlalchemy import delete, select, update

from app.config import Settings
from app.domain import Snapshot, timeframe_ms
from app.storage.models import CandleModel, SymbolOutcomeModel
from app.storage.repositories import CandleRepository, RunRepository
from app.storage.track_record import TrackRecordRepository
from app.worker.analysis_options import analysis_options
from app.worker.track_record import RunScorer
from tests.support.candles import bundled_candles
from tests.support.snapshots import SNAPSHOT_AS_OF_MS, MakeSnapshot
from tests.support.storage import StorageBackend
from tests.support.track_record import differences, recompute, stored_figures

HOUR_MS = timeframe_ms("1h")
BASES = ("BTC", "ETH", "SOL", "ADA", "XRP", "DOGE", "LTC")
ENTRY_MS = SNAPSHOT_AS_OF_MS - HOUR_MS  # the entry candle opens an hour before the run's data_as_of


def _store(backend: StorageBackend, bases: Iterable[str], *, first_ms: int, last_ms: int) -> None:
    """The bundled 1h candles of ``bases`` opening in [first_ms, last_ms]."""
    with backend.session_factory() as session:
        repository = CandleRepository(session)
        for base in bases:
            candles = [c for c in bundled_candles(base, "1h") if first_ms <= c.open_time_ms <= last_ms]
            repository.upsert(exchange="binance", symbol=f"{base}/USDT", timeframe="1h", candles=candles)
        session.commit()


def _publish(backend: StorageBackend, make_snapshot: MakeSnapshot) -> Snapshot:
    snapshot: Snapshot = make_snapshot(run_id="windows", bases=BASES, as_of_ms=SNAPSHOT_AS_OF_MS)
    with backend.session_factory() as session:
        RunRepository(session).save_snapshot(snapshot)
        session.commit()
    return snapshot


def _scorer(backend: StorageBackend) -> RunScorer:
    options = analysis_options(Settings(_env_file=None, database_url=backend.url))
    return RunScorer(exchange="binance", options=options, session_factory=backend.session_factory)


def test_gaps_and_discontinuities_exclude_symbols_with_their_reason(
    backend: StorageBackend, make_snapshot: MakeSnapshot
) -> None:
    _publish(backend, make_snapshot)
    _store(backend, BASES, first_ms=ENTRY_MS - 20 * HOUR_MS, last_ms=ENTRY_MS + 8 * HOUR_MS)
    with backend.session_factory() as session:
        session.execute(
            delete(CandleModel).where(
                CandleModel.symbol == "ETH/USDT", CandleModel.open_time_ms == ENTRY_MS + 2 * HOUR_MS
            )
        )
        redenominated = {name: getattr(CandleModel, name) * 1000 for name in ("open", "high", "low", "close")}
        session.execute(
            update(CandleModel)
            .where(CandleModel.symbol == "SOL/USDT", CandleModel.open_time_ms >= ENTRY_MS + 3 * HOUR_MS)
            .values(**redenominated)
        )
        session.commit()
    result = _scorer(backend).score_pending()
    assert (result.runs, result.scores) == (1, 2)  # 1h and 4h; the 24h window is not stored
    with backend.session_factory() as session:
        repository = TrackRecordRepository(session)
        scores = {h: repository.scores(exchange="binance", horizon=h) for h in ("1h", "4h", "24h")}
        empty_rows = set(
            session.execute(select(SymbolOutcomeModel.symbol).where(SymbolOutcomeModel.forward_return.is_(None)))
            .scalars()
            .all()
        )
    assert scores["24h"] == []
    for horizon in ("1h", "4h"):
        (score,) = scores[horizon]
        assert score.excluded == {
            "ETH/USDT": f"candle gap: 1 of the {score.candles + 3} candles after 2022-09-30T23:00Z missing",
            "SOL/USDT": "price discontinuity at 2022-10-01T02:00Z within the window",
        }
        assert score.symbols == len(BASES) - 2 and score.ic is not None
        again = recompute(backend.engine, "windows", horizon, candles=score.candles)
        assert differences(stored_figures(score), again) == []
    assert empty_rows == {"ETH/USDT", "SOL/USDT"}


def test_a_horizon_waits_for_every_symbols_last_candle_or_a_later_one(
    backend: StorageBackend, make_snapshot: MakeSnapshot
) -> None:
    _publish(backend, make_snapshot)
    reach_ms = ENTRY_MS + 4 * HOUR_MS  # the 1h window: the exit candle and three more
    _store(backend, BASES, first_ms=ENTRY_MS - 20 * HOUR_MS, last_ms=reach_ms - HOUR_MS)
    scorer = _scorer(backend)
    assert dataclasses.astuple(scorer.score_pending())[:3] == (0, 0, 0)  # nothing has reached the window's end
    late = [b for b in BASES if b != "BTC"]
    _store(backend, late, first_ms=reach_ms, last_ms=reach_ms)
    waiting = scorer.score_pending()
    assert (waiting.runs, waiting.not_ready) == (0, 1)  # BTC's last candle may still come
    _store(backend, late, first_ms=reach_ms + HOUR_MS, last_ms=reach_ms + HOUR_MS)
    scored = scorer.score_pending()
    assert (scored.runs, scored.scores) == (1, 1)
    with backend.session_factory() as session:
        (score,) = TrackRecordRepository(session).scores(exchange="binance", horizon="1h")
    assert score.excluded == {"BTC/USDT": "candle gap: 1 of the 4 candles after 2022-09-30T23:00Z missing"}


def test_a_scored_horizon_stays_as_scored_when_more_candles_arrive(
    backend: StorageBackend, make_snapshot: MakeSnapshot
) -> None:
    _publish(backend, make_snapshot)
    _store(backend, BASES, first_ms=ENTRY_MS - 20 * HOUR_MS, last_ms=ENTRY_MS + 4 * HOUR_MS)
    scorer = _scorer(backend)
    first = scorer.score_pending()
    _store(backend, BASES, first_ms=ENTRY_MS + 5 * HOUR_MS, last_ms=ENTRY_MS + 30 * HOUR_MS)
    later = scorer.score_pending()
    assert (first.scores, later.scores) == (1, 2)  # 1h first; then 4h and 24h, 1h untouched
    assert later.latest["1h"].scored_at == first.latest["1h"].scored_at
