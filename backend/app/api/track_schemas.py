"""Response models of the track-record endpoints (``/api/v1/track-record*``), for the OpenAPI document and the tests.

Units: returns are log returns; percentiles are 0..100 of the cross-section (50 = no skill); rates are fractions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from app.api.schemas import HORIZONS_DOC, _Strict
from app.domain import Label


class TrackRecordHead(_Strict):
    """The fields every track-record body starts with."""

    success: Literal[True] = True
    exchange: str
    horizon: str = Field(description="the horizon the calls were scored at (a horizon the current run serves)")
    horizons: list[str] = Field(description=HORIZONS_DOC)
    data_source: str = Field(description="tier that served the body: memory, redis or database")


class TrackWindow(TrackRecordHead):
    """A window of runs: those entered (as_of) after ``since`` and at or before ``until``."""

    days: int = Field(description="the window's length in days")
    since: datetime = Field(description="the window's start (exclusive): until - days")
    until: datetime = Field(description="the window's end (inclusive): as_of of the exchange's current run")


class RunRef(_Strict):
    """One run: its id and entry time."""

    run_id: str
    as_of: datetime = Field(description="close time of the last candle the run used (its calls' entry)")


class LevelOutcomes(_Strict):
    """Served support/resistance levels judged over the horizon window (the definitions of dantaro evaluate)."""

    judged: int = Field(description="levels whose whole window and bounce candles exist, free of discontinuities")
    touched: int = Field(description="levels price reached within the horizon window")
    bounced: int = Field(description="touched levels whose close 3 candles after the first touch is back on their side")
    touch_rate: float | None = Field(description="touched / judged")
    bounce_rate: float | None = Field(description="bounced / touched")


class LabelOutcomeItem(_Strict):
    """The calls of one label over the window: means weighted by each run's count of the label."""

    label: Label
    count: int = Field(description="calls with this label and a realised return, summed over runs")
    mean_return: float | None = Field(description="mean forward log return over the horizon")
    mean_excess_log_return: float | None = Field(description="mean log return minus the run's universe mean")
    mean_percentile: float | None = Field(description="mean cross-sectional percentile of the return, 50 = no skill")
    share_beating_median: float | None = Field(description="share of calls whose return beat the run's median")


class TrackFigures(_Strict):
    """The figures of one set of calls (the served ones or the random baseline) over the window's runs."""

    runs_with_ic: int = Field(description="runs with a defined IC (enough symbols with returns)")
    mean_ic: float | None = Field(description="mean per-run Spearman IC of score vs forward return")
    ic_t: float | None = Field(description="Newey-West t of mean_ic with ic_t_lags lags; null below 3 runs")
    positive_ic_share: float | None = Field(description="share of runs whose IC is above 0")
    labels: list[LabelOutcomeItem] = Field(description="every label, strongest buy first")
    top5_excess: float | None = Field(description="mean over runs of the 5 best-scored symbols' mean log excess")
    top10_excess: float | None = Field(description="the same for the 10 best-scored symbols")
    levels: LevelOutcomes


class TrackRecordResponse(TrackWindow):
    """How the calls of the window turned out, against a random baseline scored on the same runs."""

    as_of: datetime | None = Field(description="the newest window_end of the runs; null: nothing scored")
    runs_scored: int
    first_run: RunRef | None = Field(description="the oldest scored run of the window")
    last_run: RunRef | None = Field(description="the newest scored run of the window")
    symbols_scored: int = Field(description="symbols scored, summed over runs")
    symbols_excluded: int = Field(description="symbols left out of a run's scoring (gap or discontinuity), summed")
    run_spacing_seconds: float | None = Field(description="median time between consecutive scored runs")
    ic_t_lags: int = Field(description="Newey-West lags: the overlap of the horizon windows at the run spacing")
    model: TrackFigures = Field(description="the served scores, labels and levels")
    random_baseline: TrackFigures = Field(description="random scores, permuted labels and displaced levels")


class RunLabelCount(_Strict):
    """One label's calls in one run."""

    label: Label
    count: int
    mean_percentile: float | None = Field(description="0..100, 50 = no skill; null without returns")


class ScoredRunItem(RunRef):
    """One scored run."""

    window_end: datetime = Field(description="close time of the horizon's last candle")
    scored_at: datetime = Field(description="when the run was scored")
    symbols: int = Field(description="symbols scored")
    excluded: dict[str, str] = Field(description="symbols left out and why")
    ic: float | None
    random_ic: float | None = Field(description="the random baseline's IC on the same run")
    labels: list[RunLabelCount]
    top5_excess: float | None
    top10_excess: float | None
    levels: LevelOutcomes


class TrackRecordRunsResponse(TrackRecordHead):
    """One page of scored runs, newest first."""

    count: int
    limit: int
    runs: list[ScoredRunItem]
    next_before: str | None = Field(description="pass as before= for the next (older) page; null on the last")


class SymbolCall(RunRef):
    """One call of a symbol and what followed over the horizon."""

    label: Label
    score: float = Field(description="the horizon's score in [0, 1]")
    rank: int
    probability_outperform: float | None
    forward_return: float | None = Field(description="log return from as_of to the horizon's end; null: excluded")
    excess_log_return: float | None = Field(description="forward_return minus the run's universe mean")
    percentile: float | None = Field(description="the return's percentile in the run, 0..100")


class SymbolTrackRecordResponse(TrackWindow):
    """One symbol's calls in the window, newest first."""

    symbol: str
    count: int
    calls: list[SymbolCall]
