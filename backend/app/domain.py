"""Domain objects shared by every package: candles, tickers, markets and what one analysis run produces.

Invariants:
- Times are integers in milliseconds since the Unix epoch (UTC) when named ``*_ms``; datetimes (``*_at``) are
  timezone-aware UTC.
- A ``Candle`` is always a *closed* candle; its close time is ``open_time_ms + timeframe_ms(timeframe)``.
- Symbols are ccxt unified symbols, ``BASE/QUOTE`` (e.g. ``BTC/USDT``).
- Prices are in the quote currency; ``volume`` on a candle is base volume; ``*_quote_volume`` is quote volume.
- ``ticker_from_candles`` is the one definition of a ticker derived from candles (the replay source serves it, the
  worker falls back to it over stored candles when the exchange's tickers call fails, and ``dantaro evaluate`` gives
  it to the analysis); ``Snapshot.tickers_source`` says which a run used.

This module imports only the standard library.
"""

from __future__ import annotations

import enum
import re
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

_TIMEFRAME_RE = re.compile(r"^(\d+)([mhdw])$")
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}

# Quote currencies recognised when a caller writes a pair without a separator hint (``KRW-BTC``).
KNOWN_QUOTES = ("KRW", "USDT", "USDC", "BUSD", "FDUSD", "USD", "EUR", "BTC", "ETH", "BNB")


def timeframe_ms(timeframe: str) -> int:
    """Length of a ccxt timeframe string (``1m``, ``1h``, ``1d``, ``1w``) in milliseconds."""
    match = _TIMEFRAME_RE.match(timeframe)
    if match is None:
        raise ValueError(f"unknown timeframe {timeframe!r}: use a number and one of m, h, d, w (e.g. 1h)")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def horizon_for(candles: int, *, timeframe: str) -> Horizon:
    """The horizon of ``candles`` candles of ``timeframe``, named by its length: 4 x ``1h`` -> ``4h``."""
    match = _TIMEFRAME_RE.match(timeframe)
    if match is None or candles < 1:
        raise ValueError(f"a horizon is a positive number of {timeframe!r} candles, not {candles}")
    return Horizon(name=f"{int(match.group(1)) * candles}{match.group(2)}", candles=candles)


def default_horizons(timeframe: str) -> tuple[Horizon, ...]:
    """The served horizons when none are configured: 1, 4 and a day of candles below 1d (1h: ``1h 4h 24h``),
    1, 3 and 7 candles from 1d up (1d: ``1d 3d 7d``)."""
    step_ms = timeframe_ms(timeframe)
    day_ms = _UNIT_MS["d"]
    counts = (1, 3, 7) if step_ms >= day_ms else tuple(sorted({1, 4, max(1, day_ms // step_ms)}))
    return tuple(horizon_for(count, timeframe=timeframe) for count in counts)


def ms_to_datetime(value_ms: int) -> datetime:
    """UTC datetime for a millisecond epoch timestamp."""
    return datetime.fromtimestamp(value_ms / 1000, tz=UTC)


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(tz=UTC)


def symbol_candidates(text: str, *, default_quote: str) -> list[str]:
    """Unified symbols a user-written pair may mean: ``BTC``, ``BTC-KRW``, ``BTC_KRW``, ``KRW-BTC``, ``BTC/KRW``.

    Returns the most likely reading first; the caller picks the first one it knows. Raises ``ValueError``
    for text that cannot be a pair.
    """
    cleaned = text.strip().upper()
    if not re.fullmatch(r"[A-Z0-9]{1,20}([/_\-][A-Z0-9]{1,20})?", cleaned):
        raise ValueError(f"{text!r} is not a symbol: use BTC, BTC-{default_quote} or BTC/{default_quote}")
    parts = re.split(r"[/_\-]", cleaned)
    if len(parts) == 1:
        return [f"{parts[0]}/{default_quote.upper()}"]
    first, second = parts
    if "/" in cleaned:
        return [f"{first}/{second}"]
    forward, reverse = f"{first}/{second}", f"{second}/{first}"
    quote = default_quote.upper()
    if (first == quote and second != quote) or (first in KNOWN_QUOTES and second not in KNOWN_QUOTES):
        return [reverse, forward]
    return [forward, reverse]


class Label(enum.StrEnum):
    """Recommendation label, strongest buy first."""

    STRONG_BUY = "STRONG_BUY"
    BUY = "BUY"
    HOLD = "HOLD"
    SELL = "SELL"
    STRONG_SELL = "STRONG_SELL"


class RunStatus(enum.StrEnum):
    """Outcome of one analysis run."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"  # published, but some symbols failed
    FAILED = "failed"  # nothing published


class TickersSource(enum.StrEnum):
    """Where a run's 24h statistics (last price, 24h change and volumes) came from."""

    EXCHANGE = "exchange"  # the exchange's own tickers call
    CANDLES = "candles"  # ``ticker_from_candles`` over stored or replayed candles (the replay; the tickers fallback)


class DeliveryState(enum.StrEnum):
    """Where a webhook delivery stands."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Candle:
    """One closed OHLCV candle; ``volume`` is in the base currency."""

    open_time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True)
class Market:
    """A tradable spot market as the exchange lists it."""

    symbol: str
    base: str
    quote: str
    active: bool = True
    spot: bool = True


@dataclass(frozen=True, slots=True)
class Ticker:
    """24-hour statistics for one symbol at ``timestamp_ms``."""

    symbol: str
    last: float
    timestamp_ms: int
    change_24h_pct: float | None = None
    base_volume_24h: float | None = None
    quote_volume_24h: float | None = None


@dataclass(frozen=True, slots=True)
class Horizon:
    """A served forecast horizon: ``candles`` of the analysis timeframe, named by its length (``4h``, ``3d``)."""

    name: str
    candles: int


@dataclass(frozen=True, slots=True)
class HorizonScore:
    """One symbol's composite at one horizon: score in [0, 1], its rank, the calibrated probability and label."""

    score: float
    rank: int
    label: Label
    probability_outperform: float | None  # P(forward return beats the universe median); None without calibration


@dataclass(frozen=True, slots=True)
class HorizonModel:
    """How one horizon's scores and labels were made: factor weights, where they came from, the measured edge.

    ``weights_source`` is ``fitted`` (walk-forward fit on stored candles), ``configured`` (``DANTARO_FACTOR_WEIGHTS``)
    or ``prior`` (the documented prior: too little history to fit). ``calibration`` is the monotone map from a
    score's cross-sectional percentile (0..1) to the probability of beating the universe median, as knots.
    ``labels_active`` is False when there is no measured edge; then every label is HOLD and ``note`` says why.
    """

    horizon: str
    candles: int
    weights: Mapping[str, float]
    weights_source: str
    fitted_at: datetime | None = None
    fit_start: datetime | None = None  # first and last cross-section the fit used (their forward returns closed)
    fit_end: datetime | None = None
    cross_sections: int = 0
    walk_forward_ic: float | None = None  # mean out-of-sample Spearman IC of the score inside the fit window
    walk_forward_t: float | None = None  # its Newey-West t statistic
    calibration: tuple[tuple[float, float], ...] = ()
    calibration_samples: int = 0
    labels_active: bool = False
    note: str = ""


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One symbol's ranked recommendation; every score is in [0, 1].

    ``rank``, ``total_score`` and ``label`` are those of ``horizon`` (the default served horizon);
    ``scores_by_horizon`` holds every served horizon's score, rank, label and probability.
    """

    symbol: str
    rank: int
    total_score: float
    technical_score: float
    volume_score: float
    volatility_score: float
    risk_score: float
    label: Label
    current_price: float
    price_change_24h: float  # percent
    volume_24h: float  # quote currency
    details: Mapping[str, Any] = field(default_factory=dict)
    horizon: str = ""
    probability_outperform: float | None = None
    calibration_samples: int = 0
    scores_by_horizon: Mapping[str, HorizonScore] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Level:
    """One support or resistance price with how much the history supports it."""

    price: float
    kind: str  # "support" | "resistance", relative to the last close
    strength: float  # [0, 1]
    sources: tuple[str, ...]
    touches: int
    last_touched_at: datetime | None
    distance_pct: float  # (price - last close) / last close * 100


@dataclass(frozen=True, slots=True)
class PivotPoints:
    """Classic floor pivots from the high, low and close of the last closed UTC day before the run's ``as_of``.

    ``pivot`` P = (H + L + C) / 3, ``r1`` = 2P - L, ``s1`` = 2P - H, ``r2`` = P + (H - L), ``s2`` = P - (H - L).
    """

    period_start: datetime  # 00:00 UTC of the day H, L and C come from
    high: float
    low: float
    close: float
    pivot: float
    r1: float
    r2: float
    s1: float
    s2: float


@dataclass(frozen=True, slots=True)
class VolumeProfileLevels:
    """The volume profile of a symbol's levels series: point of control and the value-area bounds (prices)."""

    poc: float
    value_area_high: float
    value_area_low: float
    value_area_share: float  # the share of the series' volume the value area holds at least (0.70)


@dataclass(frozen=True, slots=True)
class SupportLevels:
    """Support and resistance for one symbol, in the original API's three tiers plus the full list.

    ``pivots`` and ``volume_profile`` are the raw reference prices the levels are partly merged from (None when the
    series had none; always None in runs published before they were added).
    """

    symbol: str
    aggressive_support: float | None
    moderate_support: float | None
    conservative_support: float | None
    aggressive_resistance: float | None
    moderate_resistance: float | None
    conservative_resistance: float | None
    calculation_method: str
    data_points_count: int
    levels: tuple[Level, ...] = ()
    pivots: PivotPoints | None = None
    volume_profile: VolumeProfileLevels | None = None


@dataclass(frozen=True, slots=True)
class MarketStatus:
    """The state of one exchange's market as a whole."""

    market_trend: str  # "bullish" | "bearish" | "neutral"
    market_sentiment: str  # "greed" | "fear" | "neutral" ...
    overall_score: float  # [0, 1]
    active_coins_count: int
    total_volume_24h: float  # quote currency
    average_volatility: float
    top_gainers: tuple[tuple[str, float], ...]
    top_losers: tuple[tuple[str, float], ...]
    analysis_summary: Mapping[str, Any] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AnalysisResult:
    """What the pure analysis produced for one exchange from one set of candles."""

    recommendations: tuple[Recommendation, ...]
    levels: Mapping[str, SupportLevels]
    market: MarketStatus
    data_as_of_ms: int  # close time of the last closed candle used
    errors: Mapping[str, str] = field(default_factory=dict)  # symbol -> why it was left out (or what was cut)
    models: Mapping[str, HorizonModel] = field(default_factory=dict)  # horizon name -> how its scores were made


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one analysis run published for one exchange, identified by ``run_id``."""

    run_id: str
    exchange: str
    timeframe: str
    data_as_of: datetime
    generated_at: datetime
    universe_size: int
    recommendations: tuple[Recommendation, ...]
    levels: Mapping[str, SupportLevels]
    market: MarketStatus
    errors: Mapping[str, str] = field(default_factory=dict)
    models: Mapping[str, HorizonModel] = field(default_factory=dict)  # horizon name -> how its scores were made
    default_horizon: str = ""
    tickers_source: TickersSource = TickersSource.EXCHANGE


@dataclass(frozen=True, slots=True)
class LabelOutcome:
    """How the calls of one label did over one horizon of one run (forward returns are log returns).

    ``mean_excess_log_return`` is over the universe mean of the symbols scored; ``mean_percentile`` is the mean
    cross-sectional percentile of the forward return (0..100, 50 = no skill); None when ``count`` is 0.
    """

    label: Label
    count: int
    mean_return: float | None
    mean_excess_log_return: float | None
    mean_percentile: float | None
    share_beating_median: float | None


@dataclass(frozen=True, slots=True)
class RunScore:
    """One published run scored at one served horizon against the candles that followed it (the track record).

    The window runs from ``as_of`` (the run's ``data_as_of``) to ``window_end`` (``candles`` candles later).
    ``excluded`` maps each symbol left out (candle gap, price discontinuity, no exit candle) to why. The
    ``random_*`` figures are those of the seeded random baseline scored on the same run the same way.
    """

    run_id: str
    exchange: str
    horizon: str
    candles: int
    as_of: datetime
    window_end: datetime
    scored_at: datetime
    symbols: int
    excluded: Mapping[str, str]
    ic: float | None
    labels: tuple[LabelOutcome, ...]
    top5_excess: float | None
    top10_excess: float | None
    levels_judged: int
    levels_touched: int
    levels_bounced: int
    random_ic: float | None
    random_labels: tuple[LabelOutcome, ...]
    random_top5_excess: float | None
    random_top10_excess: float | None
    random_levels_judged: int
    random_levels_touched: int
    random_levels_bounced: int


@dataclass(frozen=True, slots=True)
class SymbolOutcome:
    """One symbol's served call at one horizon of one run and what followed (None returns: the symbol was excluded).

    ``forward_return`` is the log return from ``as_of`` to the horizon's exit candle, ``excess_log_return`` that
    minus the universe mean, ``percentile`` its cross-sectional percentile (0..100).
    """

    run_id: str
    exchange: str
    horizon: str
    symbol: str
    as_of: datetime
    label: Label
    score: float
    rank: int
    probability_outperform: float | None
    forward_return: float | None
    excess_log_return: float | None
    percentile: float | None


DAY_MS = _UNIT_MS["d"]


def ticker_from_candles(symbol: str, candles: Sequence[Candle], *, step_ms: int, now_ms: int) -> Ticker | None:
    """The 24h ticker of ``symbol`` derived from its ``step_ms`` candles closed by ``now_ms`` (ascending).

    ``last`` is the last close; the 24h change compares it with the close of the candle that opened exactly 24 hours
    before the last one (None without it); the 24h volumes sum the candles that opened within the last 24 hours,
    quote volume approximated by ``sum(close * base volume)``. Only those candles are read, so any tail holding them
    gives the same ticker. None without candles.
    """
    if not candles:
        return None
    last = candles[-1]
    tail = candles[-(DAY_MS // step_ms + 1) :]
    opens = [c.open_time_ms for c in tail]
    prior = bisect_left(opens, last.open_time_ms - DAY_MS)
    change_pct: float | None = None
    if prior < len(tail) - 1 and opens[prior] == last.open_time_ms - DAY_MS and tail[prior].close != 0:
        change_pct = (last.close / tail[prior].close - 1.0) * 100.0
    day = tail[bisect_left(opens, last.open_time_ms + step_ms - DAY_MS) :]
    return Ticker(
        symbol=symbol,
        last=last.close,
        timestamp_ms=now_ms,
        change_24h_pct=change_pct,
        base_volume_24h=sum(c.volume for c in day),
        quote_volume_24h=sum(c.close * c.volume for c in day),
    )
