"""SQLAlchemy 2.0 models: candles, analysis runs and their rows, worker heartbeats, API keys.

Invariants:
- Times named ``*_ms`` are integer epoch milliseconds (UTC); ``*_at`` columns are ``UTCDateTime``: written from
  aware datetimes (naive ones are rejected), read back as aware UTC on every backend (SQLite included).
- Prices and volumes are ``Float(53)`` (double precision); enums are stored as their string values.
- Every constraint and index has a deterministic name (``NAMING_CONVENTION``) so Alembic sees no drift.
- Rows of a run (recommendations, support_levels, market_status) are deleted with their run (ON DELETE CASCADE).
- ``recommendations``, ``support_levels`` and ``market_status`` hold one column per field of their domain dataclass
  (``runs.ROW_MODELS``; nested values in JSON columns), ``analysis_runs`` the ``Snapshot``'s own fields;
  ``tests/storage/test_row_mapping.py`` fails when a domain field has no column.
- ``run_scores`` and ``symbol_outcomes`` (the track record) hold one column per field of ``RunScore`` and
  ``SymbolOutcome`` and are deleted with their run too.
The migrations in ``migrations/versions`` mirror this file exactly (0001: everything up to API keys; 0002:
``job_claims``; 0003: per-horizon scores and fitted models; 0004: the track record; 0005: the run's tickers source;
0006: webhooks, their outbox of deliveries and each delivery attempt); change both together.
- ``webhook_deliveries`` is the transactional outbox: a run's deliveries are inserted in the transaction that
  publishes it; they are deleted with their run or their webhook (ON DELETE CASCADE), attempts with their delivery.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
RUN_ID_LENGTH = 32
EMPTY_JSON_OBJECT = text("'{}'")  # server default of JSON columns added to tables that may already hold rows


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored as UTC; SQLite's naive values come back tagged UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Reject naive datetimes and normalise to UTC."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given: store timezone-aware UTC datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return aware UTC datetimes whatever the driver hands back."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _price() -> Mapped[float]:
    return mapped_column(Float(53), nullable=False)


def _optional_price() -> Mapped[float | None]:
    return mapped_column(Float(53), nullable=True)


def _run_fk() -> Mapped[str]:
    return mapped_column(
        String(RUN_ID_LENGTH), ForeignKey("analysis_runs.run_id", ondelete="CASCADE"), primary_key=True
    )


class Base(DeclarativeBase):
    """Declarative base carrying the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class CandleModel(Base):
    """One closed candle of one symbol and timeframe on one exchange."""

    __tablename__ = "candles"
    __table_args__ = (Index("ix_candles_exchange_timeframe_open_time_ms", "exchange", "timeframe", "open_time_ms"),)

    exchange: Mapped[str] = mapped_column(String(64), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    timeframe: Mapped[str] = mapped_column(String(8), primary_key=True)
    open_time_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    open: Mapped[float] = _price()
    high: Mapped[float] = _price()
    low: Mapped[float] = _price()
    close: Mapped[float] = _price()
    volume: Mapped[float] = _price()


class AnalysisRunModel(Base):
    """One analysis run; ``published_at`` is set when its snapshot rows were written."""

    __tablename__ = "analysis_runs"
    __table_args__ = (Index("ix_analysis_runs_exchange_published_at", "exchange", "published_at"),)

    run_id: Mapped[str] = mapped_column(String(RUN_ID_LENGTH), primary_key=True)
    exchange: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    generated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    data_as_of: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    timeframe: Mapped[str | None] = mapped_column(String(8), nullable=True)
    universe_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    symbols_total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    symbols_ok: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    symbols_failed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    errors: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    models: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, server_default=EMPTY_JSON_OBJECT)
    default_horizon: Mapped[str] = mapped_column(String(16), nullable=False, server_default="")
    tickers_source: Mapped[str] = mapped_column(String(16), nullable=False, server_default="exchange")


class RecommendationModel(Base):
    """One symbol's ranked recommendation within a run."""

    __tablename__ = "recommendations"

    run_id: Mapped[str] = _run_fk()
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, nullable=False)
    total_score: Mapped[float] = _price()
    technical_score: Mapped[float] = _price()
    volume_score: Mapped[float] = _price()
    volatility_score: Mapped[float] = _price()
    risk_score: Mapped[float] = _price()
    label: Mapped[str] = mapped_column(String(16), nullable=False)
    current_price: Mapped[float] = _price()
    price_change_24h: Mapped[float] = _price()
    volume_24h: Mapped[float] = _price()
    details: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    horizon: Mapped[str] = mapped_column(String(16), nullable=False, server_default="")
    probability_outperform: Mapped[float | None] = _optional_price()
    calibration_samples: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    scores_by_horizon: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, server_default=EMPTY_JSON_OBJECT)


class SupportLevelsModel(Base):
    """One symbol's support and resistance tiers plus the full level list within a run."""

    __tablename__ = "support_levels"

    run_id: Mapped[str] = _run_fk()
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    aggressive_support: Mapped[float | None] = _optional_price()
    moderate_support: Mapped[float | None] = _optional_price()
    conservative_support: Mapped[float | None] = _optional_price()
    aggressive_resistance: Mapped[float | None] = _optional_price()
    moderate_resistance: Mapped[float | None] = _optional_price()
    conservative_resistance: Mapped[float | None] = _optional_price()
    calculation_method: Mapped[str] = mapped_column(String(64), nullable=False)
    data_points_count: Mapped[int] = mapped_column(Integer, nullable=False)
    levels: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)
    pivots: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    volume_profile: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)


class MarketStatusModel(Base):
    """The market as a whole for one run."""

    __tablename__ = "market_status"

    run_id: Mapped[str] = _run_fk()
    market_trend: Mapped[str] = mapped_column(String(32), nullable=False)
    market_sentiment: Mapped[str] = mapped_column(String(32), nullable=False)
    overall_score: Mapped[float] = _price()
    active_coins_count: Mapped[int] = mapped_column(Integer, nullable=False)
    total_volume_24h: Mapped[float] = _price()
    average_volatility: Mapped[float] = _price()
    top_gainers: Mapped[list[Any]] = mapped_column(JSON, nullable=False)
    top_losers: Mapped[list[Any]] = mapped_column(JSON, nullable=False)
    analysis_summary: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)


class WorkerHeartbeatModel(Base):
    """The last sign of life of one worker process."""

    __tablename__ = "worker_heartbeats"

    worker_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255), nullable=False)
    pid: Mapped[int] = mapped_column(Integer, nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_beat_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    state: Mapped[str] = mapped_column(String(32), nullable=False)
    current_run_id: Mapped[str | None] = mapped_column(String(RUN_ID_LENGTH), nullable=True)


class ApiKeyModel(Base):
    """An API key: a public ``key_id`` and the sha256 hex of the full secret (the secret itself is never stored)."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    rate_limit_per_min: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class JobClaimModel(Base):
    """One claimed slot of a scheduled job: the first worker to insert (job, slot) runs it (revision 0002)."""

    __tablename__ = "job_claims"
    __table_args__ = (Index("ix_job_claims_claimed_at", "claimed_at"),)

    job: Mapped[str] = mapped_column(String(128), primary_key=True)
    slot: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    holder: Mapped[str] = mapped_column(String(64), nullable=False)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class ModelFitModel(Base):
    """The newest fitted model of one exchange and horizon (the refit job upserts it; revision 0003)."""

    __tablename__ = "model_fits"

    exchange: Mapped[str] = mapped_column(String(64), primary_key=True)
    horizon: Mapped[str] = mapped_column(String(16), primary_key=True)
    fitted_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    model: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)


class RunScoreModel(Base):
    """One run scored at one horizon: the fields of ``RunScore`` (revision 0004; deleted with its run)."""

    __tablename__ = "run_scores"
    __table_args__ = (Index("ix_run_scores_exchange_horizon_as_of", "exchange", "horizon", "as_of"),)

    run_id: Mapped[str] = _run_fk()
    horizon: Mapped[str] = mapped_column(String(16), primary_key=True)
    exchange: Mapped[str] = mapped_column(String(64), nullable=False)
    candles: Mapped[int] = mapped_column(Integer, nullable=False)
    as_of: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    scored_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    symbols: Mapped[int] = mapped_column(Integer, nullable=False)
    excluded: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    ic: Mapped[float | None] = _optional_price()
    labels: Mapped[list[Any]] = mapped_column(JSON, nullable=False)
    top5_excess: Mapped[float | None] = _optional_price()
    top10_excess: Mapped[float | None] = _optional_price()
    levels_judged: Mapped[int] = mapped_column(Integer, nullable=False)
    levels_touched: Mapped[int] = mapped_column(Integer, nullable=False)
    levels_bounced: Mapped[int] = mapped_column(Integer, nullable=False)
    random_ic: Mapped[float | None] = _optional_price()
    random_labels: Mapped[list[Any]] = mapped_column(JSON, nullable=False)
    random_top5_excess: Mapped[float | None] = _optional_price()
    random_top10_excess: Mapped[float | None] = _optional_price()
    random_levels_judged: Mapped[int] = mapped_column(Integer, nullable=False)
    random_levels_touched: Mapped[int] = mapped_column(Integer, nullable=False)
    random_levels_bounced: Mapped[int] = mapped_column(Integer, nullable=False)


class SymbolOutcomeModel(Base):
    """One symbol's call at one horizon of one run and its outcome: the fields of ``SymbolOutcome`` (revision 0004)."""

    __tablename__ = "symbol_outcomes"
    __table_args__ = (
        Index("ix_symbol_outcomes_exchange_symbol_horizon_as_of", "exchange", "symbol", "horizon", "as_of"),
    )

    run_id: Mapped[str] = _run_fk()
    horizon: Mapped[str] = mapped_column(String(16), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    exchange: Mapped[str] = mapped_column(String(64), nullable=False)
    as_of: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    label: Mapped[str] = mapped_column(String(16), nullable=False)
    score: Mapped[float] = _price()
    rank: Mapped[int] = mapped_column(Integer, nullable=False)
    probability_outperform: Mapped[float | None] = _optional_price()
    forward_return: Mapped[float | None] = _optional_price()
    excess_log_return: Mapped[float | None] = _optional_price()
    percentile: Mapped[float | None] = _optional_price()


class WebhookModel(Base):
    """A webhook subscription: where to POST which events, its filters and its sealed signing secret (0006)."""

    __tablename__ = "webhooks"

    webhook_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    url: Mapped[str] = mapped_column(Text, nullable=False)
    events: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    exchanges: Mapped[list[str]] = mapped_column(JSON, nullable=False)  # empty: every exchange
    symbols: Mapped[list[str]] = mapped_column(JSON, nullable=False)  # empty: every symbol
    horizon: Mapped[str] = mapped_column(String(16), nullable=False)  # empty: the run's default horizon
    top_n: Mapped[int] = mapped_column(Integer, nullable=False)
    secret: Mapped[str] = mapped_column(Text, nullable=False)  # app.storage.secret_box: sealed or plain
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class WebhookDeliveryModel(Base):
    """One event for one webhook: the exact body every attempt sends, and where its delivery stands (0006)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_webhook_id_created_at", "webhook_id", "created_at"),
        Index("ix_webhook_deliveries_run_id", "run_id"),
    )

    delivery_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("webhooks.webhook_id", ondelete="CASCADE"), nullable=False
    )
    event: Mapped[str] = mapped_column(String(32), nullable=False)
    run_id: Mapped[str | None] = mapped_column(
        String(RUN_ID_LENGTH), ForeignKey("analysis_runs.run_id", ondelete="CASCADE"), nullable=True
    )
    body: Mapped[str] = mapped_column(Text, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WebhookAttemptModel(Base):
    """One POST of a delivery: when, the HTTP status (None: no response) or the error, and the latency (0006)."""

    __tablename__ = "webhook_attempts"

    delivery_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("webhook_deliveries.delivery_id", ondelete="CASCADE"), primary_key=True
    )
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[float] = _price()
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
