"""One ``Settings`` for every process, read from ``DANTARO_*`` environment variables and an optional ``.env``.

Defaults are the embedded ones: a SQLite file under ``data_dir``, no Redis (in-process cache), the replay
source over the bundled real Binance history. Nothing here is built at import time: call ``get_settings()``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.domain import Horizon, default_horizons, horizon_for
from app.redis_url import parse_redis_url

PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLED_DATA_DIR = PACKAGE_DIR / "data" / "binance-spot"
DEVELOPMENT_KEY = "development-user-server-key"
PLACEHOLDER_SECRET = "CHANGE_ME"  # deployment/.env.production ships it; production refuses to run with it
WEBHOOK_KEY_BYTES = 32  # AES-256
KOREAN_EXCHANGES = frozenset({"upbit", "bithumb", "coinone", "korbit", "gopax"})


def _default_data_dir() -> Path:
    # The repository root's var/ when running from a checkout; deployments set DANTARO_DATA_DIR.
    return PACKAGE_DIR.parent.parent / "var"


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask; a cgroup CPU quota is not counted)."""
    return len(os.sched_getaffinity(0))


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CsvList = Annotated[list[str], NoDecode]
JsonObject = Annotated[dict[str, Any], NoDecode]


class Settings(BaseSettings):
    """All configuration of Dantaro Central; see ``.env.example`` for every variable."""

    # hide_input_in_errors: a URL with its password must not reach a log through a validation error
    model_config = SettingsConfigDict(env_prefix="DANTARO_", env_file=".env", extra="ignore", hide_input_in_errors=True)

    env: Literal["development", "production"] = "development"
    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "dantaro"
    redis_timeout_s: float = 0.25

    market_source: Literal["replay", "ccxt"] = "replay"
    exchanges: CsvList = Field(default_factory=list)
    exchange_options: JsonObject = Field(default_factory=dict)
    quote_currencies: JsonObject = Field(default_factory=dict)
    replay_data_dir: Path = BUNDLED_DATA_DIR
    replay_warmup_candles: int = Field(default=1680, ge=1)  # 70 days of 1h: the first refit has its whole window

    timeframes: CsvList = Field(default_factory=lambda: ["1h", "1d"])
    analysis_timeframe: str = "1h"
    levels_timeframe: str = "1d"
    lookback_candles: int = Field(default=500, ge=50, le=5000)
    universe_size: int = Field(default=100, ge=1, le=1000)
    factor_weights: JsonObject = Field(default_factory=dict)
    horizons: CsvList = Field(default_factory=list)  # candles of the analysis timeframe; empty = its defaults
    default_horizon: str = ""  # a served horizon's name (e.g. 4h); empty = the first
    fit_window_days: float = Field(default=60.0, gt=0)
    fit_min_days: float = Field(default=14.0, gt=0)
    refit_interval_s: float = Field(default=86400.0, gt=0)
    liquidity_min_quote_volume: float = Field(default=0.0, ge=0)
    liquidity_min_share_of_median: float = Field(default=0.05, ge=0, le=1)
    analysis_interval_s: float = Field(default=60.0, gt=0)
    heartbeat_interval_s: float = Field(default=10.0, gt=0)
    # Worker operations (app/worker): Prometheus endpoint (port 0 = off) and the retention job.
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = Field(default=9108, ge=0, le=65535)
    retention_interval_s: float = Field(default=86400.0, gt=0)
    retention_days: float = Field(default=30.0, gt=0)
    candle_retention_days: float = Field(default=400.0, gt=0)
    # Ingest (app/exchange, app/worker): collection timing, limits, retries and the universe filters.
    collect_delay_s: float = Field(default=10.0, ge=0)
    collect_concurrency: int = Field(default=8, ge=1, le=256)
    retry_max_attempts: int = Field(default=4, ge=1, le=20)
    retry_base_delay_s: float = Field(default=0.5, ge=0)
    retry_max_delay_s: float = Field(default=60.0, ge=0)
    retry_budget_s: float = Field(default=300.0, gt=0)  # summed retry waits of one cycle (ccxt)
    ban_max_wait_s: float = Field(default=300.0, ge=0)  # longest exchange IP ban (418) waited out
    universe_refresh_interval_s: float = Field(default=3600.0, gt=0)
    universe_min_quote_volume: float = Field(default=0.0, ge=0)
    universe_min_history_days: int = Field(default=30, ge=0)
    universe_exclude_pattern: str = (
        r"^(USDT|USDC|BUSD|TUSD|USDP|DAI|FDUSD|PYUSD|USDD|USDE|UST|EUR|EURT|GBP|KRW|TRY|BRL)$"
        r"|^[A-Z0-9]{3,}(UP|DOWN|BULL|BEAR)$|^[A-Z0-9]+[0-9][LS]$"
    )

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_workers: int = Field(default=0, ge=0, le=256)  # `dantaro api` processes: 0 = usable_cpus(), 1 = unsupervised
    dev_key_enabled: bool = True
    docs_enabled: bool = False
    cors_origins: CsvList = Field(default_factory=list)
    forwarded_allow_ips: CsvList = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    api_header_timeout_s: float = Field(default=10.0, gt=0)
    api_keepalive_timeout_s: float = Field(default=5.0, ge=1)
    api_max_connections: int = Field(default=1000, ge=1)
    api_hot_path: bool = True
    api_max_header_bytes: int = Field(default=16384, ge=1024)  # request line + headers; more is a 431
    api_max_body_bytes: int = Field(default=65536, ge=0)  # a request body; more is a 413 before it is read
    api_failed_keys_per_min: int = Field(default=20, ge=1)  # refused keys per client and minute before 429
    api_threads: int = Field(default=10, ge=1, le=256)  # blocking calls (database, Redis) at once per API process
    redis_retry_after_s: float = Field(default=5.0, gt=0)
    api_keys_flush_interval_s: float = Field(default=30.0, gt=0)
    # Webhooks (app/webhooks, `dantaro webhooks`): delivery by the worker, signing secrets at rest, URL policy.
    # base64 of 32 bytes: AES-256-GCM key of stored signing secrets; empty = stored as-is. SecretStr: never in a repr.
    webhook_secrets_key: SecretStr = SecretStr("")
    webhook_allow_private_urls: bool = False  # loopback/private/link-local receivers (tests, a private network)
    webhook_poll_interval_s: float = Field(default=2.0, gt=0)
    webhook_concurrency: int = Field(default=8, ge=1, le=256)
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=120)
    webhook_retry_base_s: float = Field(default=10.0, gt=0)
    webhook_retry_max_delay_s: float = Field(default=3600.0, gt=0)
    webhook_retry_window_s: float = Field(default=86400.0, gt=0)
    # Live stream (GET /api/v1/stream): heartbeat, open streams per key, Last-Event-ID replay, database poll.
    stream_heartbeat_s: float = Field(default=15.0, gt=0)
    stream_max_per_key: int = Field(default=5, ge=1, le=1000)
    stream_resume_runs: int = Field(default=100, ge=0, le=10000)
    stream_poll_interval_s: float = Field(default=1.0, gt=0)
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"

    @field_validator("exchanges", "timeframes", "cors_origins", "horizons", "forwarded_allow_ips", mode="before")
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("exchange_options", "quote_currencies", "factor_weights", mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f"must be a JSON object ({exc.msg} at position {exc.pos})") from None
        if not isinstance(value, dict):
            raise ValueError('must be a JSON object, e.g. {"upbit": {"timeout": 5000}}')
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value:
            parse_redis_url(value)  # its ValueError says what to fix, never repeating the password
        return value or None

    @field_validator("webhook_secrets_key")
    @classmethod
    def _secrets_key(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value().strip()
        if text and len(_base64_bytes(text)) != WEBHOOK_KEY_BYTES:
            raise ValueError(
                f"must be the base64 of {WEBHOOK_KEY_BYTES} random bytes; make one with "
                "python -c 'import base64,os;print(base64.b64encode(os.urandom(32)).decode())'"
            )
        return SecretStr(text)

    @model_validator(mode="after")
    def _derive_defaults(self) -> Settings:
        if not self.exchanges:
            self.exchanges = ["binance"] if self.market_source == "replay" else ["upbit"]
        self.exchanges = [name.lower() for name in self.exchanges]
        for tf in {*self.timeframes, self.analysis_timeframe, self.levels_timeframe}:
            _check_timeframe(tf)
        missing = {self.analysis_timeframe, self.levels_timeframe} - set(self.timeframes)
        if missing:
            raise ValueError(f"timeframes must include {sorted(missing)} (analysis and levels timeframes)")
        names = [h.name for h in self.served_horizons]
        if self.default_horizon and self.default_horizon not in names:
            raise ValueError(f"default_horizon {self.default_horizon!r} is not a served horizon; use one of {names}")
        return self

    @property
    def served_horizons(self) -> tuple[Horizon, ...]:
        """The horizons scores are served for: ``horizons`` (candles) or the analysis timeframe's defaults."""
        if not self.horizons:
            return default_horizons(self.analysis_timeframe)
        try:
            counts = sorted({int(text) for text in self.horizons})
        except ValueError:
            raise ValueError(f"horizons must be whole numbers of candles, e.g. 1,4,24; got {self.horizons}") from None
        return tuple(horizon_for(count, timeframe=self.analysis_timeframe) for count in counts)

    @property
    def served_default_horizon(self) -> str:
        """The horizon the legacy fields follow when a request names none."""
        return self.default_horizon or self.served_horizons[0].name

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file under ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'dantaro.sqlite3').resolve()}"

    @property
    def api_processes(self) -> int:
        """How many processes ``dantaro api`` runs: ``api_workers``, or the CPUs this process may use when 0."""
        return self.api_workers or usable_cpus()

    @property
    def default_exchange(self) -> str:
        """The exchange a request without ``exchange`` gets."""
        return self.exchanges[0]

    @property
    def schedule_interval_s(self) -> float:
        """Seconds between analysis runs: the fixed interval for replay, the smallest candle for live exchanges."""
        if self.market_source == "replay":
            return self.analysis_interval_s
        from app.domain import timeframe_ms

        return min(timeframe_ms(tf) for tf in self.timeframes) / 1000

    @property
    def stale_after_s(self) -> float:
        """A snapshot older than twice the schedule interval is reported ``stale``."""
        return 2 * self.schedule_interval_s

    @property
    def snapshot_ttl_s(self) -> int:
        """How long Redis keeps a published snapshot: long enough to outlive several missed runs."""
        return int(max(3600.0, 10 * self.schedule_interval_s))

    def quote_currency(self, exchange: str) -> str:
        """The quote currency of an exchange's universe (KRW for Korean exchanges, else USDT)."""
        if exchange in self.quote_currencies:
            return str(self.quote_currencies[exchange]).upper()
        return "KRW" if exchange in KOREAN_EXCHANGES else "USDT"

    def dev_key_active(self) -> bool:
        """Whether the development key is accepted."""
        return self.dev_key_enabled and self.env == "development"

    def production_problems(self) -> list[str]:
        """Development defaults that production must not run with (empty outside production or when fine)."""
        if self.env != "production":
            return []
        problems = []
        if self.dev_key_enabled:
            problems.append(
                "the development key is enabled: set DANTARO_DEV_KEY_ENABLED=false and create keys with "
                "`dantaro keys create --name NAME`"
            )
        for name, url in (("DANTARO_DATABASE_URL", self.database_url), ("DANTARO_REDIS_URL", self.redis_url)):
            if url and PLACEHOLDER_SECRET.lower() in url.lower():  # change_me, Change_Me, ... too
                problems.append(f"{name} still contains the placeholder {PLACEHOLDER_SECRET}: put the real password in")
        return problems

    def docs_active(self) -> bool:
        """Whether /docs, /redoc and /openapi.json are served (always in development, opt-in in production)."""
        return self.env == "development" or self.docs_enabled


def _base64_bytes(text: str) -> bytes:
    """The bytes of standard or URL-safe base64 ``text``; empty when it is not base64."""
    try:
        return base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except binascii.Error:
        return b""


def webhook_key_bytes(settings: Settings) -> bytes | None:
    """The key that seals webhook signing secrets (``DANTARO_WEBHOOK_SECRETS_KEY``), or None when unset."""
    return _base64_bytes(settings.webhook_secrets_key.get_secret_value()) or None


def _check_timeframe(timeframe: str) -> None:
    from app.domain import timeframe_ms

    timeframe_ms(timeframe)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once: environment first, then ``$DANTARO_ENV_FILE`` (default ``.env``)."""
    return Settings(_env_file=os.environ.get("DANTARO_ENV_FILE") or ".env")
