"""Typed models of the track-record bodies (``/api/v1/track-record*``): how past calls turned out.

Same invariants as ``models``: each class matches the OpenAPI component of the same name. Units: returns are log
returns; percentiles are 0..100 of the run's cross-section (50 = no skill); rates are fractions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from dantaro_client.models import ApiModel, Label


class _TrackHead(ApiModel):
    """The fields every track-record body starts with."""

    success: Literal[True] = True
    exchange: str
    horizon: str
    horizons: list[str]
    data_source: str


class _TrackWindow(_TrackHead):
    """A window of runs: entered (as_of) after ``since`` and at or before ``until``."""

    days: int
    since: datetime
    until: datetime


class RunRef(ApiModel):
    """One run: its id and entry time."""

    run_id: str
    as_of: datetime


class LevelOutcomes(ApiModel):
    """Served support/resistance levels judged over the horizon window."""

    judged: int
    touched: int
    bounced: int
    touch_rate: float | None
    bounce_rate: float | None


class LabelOutcomeItem(ApiModel):
    """The calls of one label over the window."""

    label: Label
    count: int
    mean_return: float | None
    mean_excess_log_return: float | None
    mean_percentile: float | None
    share_beating_median: float | None


class TrackFigures(ApiModel):
    """The figures of one set of calls (the served ones or the random baseline) over the window's runs."""

    runs_with_ic: int
    mean_ic: float | None
    ic_t: float | None
    positive_ic_share: float | None
    labels: list[LabelOutcomeItem]
    top5_excess: float | None
    top10_excess: float | None
    levels: LevelOutcomes


class TrackRecordResponse(_TrackWindow):
    """``GET /api/v1/track-record``: the window's calls against a random baseline on the same runs."""

    as_of: datetime | None
    runs_scored: int
    first_run: RunRef | None
    last_run: RunRef | None
    symbols_scored: int
    symbols_excluded: int
    run_spacing_seconds: float | None
    ic_t_lags: int
    model: TrackFigures
    random_baseline: TrackFigures


class RunLabelCount(ApiModel):
    """One label's calls in one run."""

    label: Label
    count: int
    mean_percentile: float | None


class ScoredRunItem(RunRef):
    """One scored run."""

    window_end: datetime
    scored_at: datetime
    symbols: int
    excluded: dict[str, str]
    ic: float | None
    random_ic: float | None
    labels: list[RunLabelCount]
    top5_excess: float | None
    top10_excess: float | None
    levels: LevelOutcomes


class TrackRecordRunsResponse(_TrackHead):
    """``GET /api/v1/track-record/runs``: one page of scored runs, newest first (``next_before``: the next page)."""

    count: int
    limit: int
    runs: list[ScoredRunItem]
    next_before: str | None


class SymbolCall(RunRef):
    """One call of a symbol and what followed over the horizon."""

    label: Label
    score: float
    rank: int
    probability_outperform: float | None
    forward_return: float | None
    excess_log_return: float | None
    percentile: float | None


class SymbolTrackRecordResponse(_TrackWindow):
    """``GET /api/v1/track-record/symbols/{symbol}``: one symbol's calls in the window, newest first."""

    symbol: str
    count: int
    calls: list[SymbolCall]
