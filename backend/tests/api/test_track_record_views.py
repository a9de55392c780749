"""The track record's aggregation (``app.api.track_record``), checked against plain per-call recomputations."""

from __future__ import annotations

import dataclasses
import math
import random
import re
import statistics
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from app.api.track_record import Window, calls_view, ic_lags, run_row_view, summary_view
from app.api.track_schemas import (
    LabelOutcomeItem,
    LevelOutcomes,
    RunLabelCount,
    RunRef,
    ScoredRunItem,
    SymbolCall,
    SymbolTrackRecordResponse,
    TrackFigures,
    TrackRecordResponse,
    TrackRecordRunsResponse,
)
from app.domain import Label, LabelOutcome, RunScore
from app.estimators import newey_west_t
from tests.support.paths import REPO_ROOT
from tests.support.track_rows import run_score

START = datetime(2022, 9, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _history(runs: int, *, candles: int = 4, spacing: timedelta = HOUR, seed: int = 5) -> list[RunScore]:
    rng = random.Random(seed)
    return [
        run_score(
            rng,
            run_id=f"r{i:03d}",
            exchange="binance",
            horizon=f"{candles}h",
            candles=candles,
            as_of=START + i * spacing,
            step=HOUR,
        )
        for i in range(runs)
    ]


def _window(scores: Sequence[RunScore], days: int = 30) -> Window:
    return Window.ending(max(score.as_of for score in scores), days=days)


def _per_call_mean(outcomes: Sequence[LabelOutcome], value: Callable[[LabelOutcome], float | None]) -> float | None:
    """The mean over every call: each run's mean repeated once per call of the label."""
    calls = [v for o in outcomes for v in [value(o)] * o.count if v is not None]
    return statistics.fmean(calls) if calls else None


def test_the_summary_is_the_mean_over_runs_and_over_calls() -> None:
    scores = _history(60)
    body = summary_view(list(reversed(scores)), window=_window(scores))  # any input order
    model = body["model"]
    assert isinstance(model, dict)
    ics = [s.ic for s in scores if s.ic is not None]
    assert body["runs_scored"] == 60 and model["runs_with_ic"] == len(ics) < 60
    assert model["mean_ic"] == pytest.approx(statistics.fmean(ics))
    assert model["positive_ic_share"] == pytest.approx(sum(ic > 0 for ic in ics) / len(ics))
    assert body["ic_t_lags"] == 3 and body["run_spacing_seconds"] == 3600  # 4h windows starting every hour
    assert model["ic_t"] == pytest.approx(newey_west_t(ics, lags=3))
    for item in model["labels"]:
        outcomes = [o for s in scores for o in s.labels if o.label.value == item["label"]]
        assert item["count"] == sum(o.count for o in outcomes)
        for name in ("mean_return", "mean_excess_log_return", "mean_percentile", "share_beating_median"):
            assert item[name] == pytest.approx(_per_call_mean(outcomes, lambda o, n=name: getattr(o, n)))
    assert [item["label"] for item in model["labels"]] == [label.value for label in Label]
    top5 = [s.top5_excess for s in scores if s.top5_excess is not None]
    assert model["top5_excess"] == pytest.approx(statistics.fmean(top5))
    judged, touched = sum(s.levels_judged for s in scores), sum(s.levels_touched for s in scores)
    assert model["levels"]["touch_rate"] == pytest.approx(touched / judged)
    assert model["levels"]["bounce_rate"] == pytest.approx(sum(s.levels_bounced for s in scores) / touched)


def test_the_random_baseline_reads_the_random_fields_of_the_same_runs() -> None:
    scores = _history(40)
    swapped = [
        dataclasses.replace(
            s,
            ic=s.random_ic,
            labels=s.random_labels,
            top5_excess=s.random_top5_excess,
            top10_excess=s.random_top10_excess,
            levels_judged=s.random_levels_judged,
            levels_touched=s.random_levels_touched,
            levels_bounced=s.random_levels_bounced,
        )
        for s in scores
    ]
    window = _window(scores)
    assert summary_view(scores, window=window)["random_baseline"] == summary_view(swapped, window=window)["model"]
    assert summary_view(scores, window=window)["random_baseline"] != summary_view(scores, window=window)["model"]


def test_the_window_keeps_runs_after_since_up_to_until() -> None:
    scores = _history(72)  # three days of hourly runs
    window = Window.ending(scores[-1].as_of, days=1)
    body = summary_view(scores, window=window)
    kept = scores[-24:]  # since is exclusive: the run exactly one day before until is out
    assert body["runs_scored"] == 24
    assert body["first_run"] == {"run_id": kept[0].run_id, "as_of": kept[0].as_of}
    assert body["last_run"] == {"run_id": kept[-1].run_id, "as_of": kept[-1].as_of}
    assert body["as_of"] == kept[-1].window_end
    assert body["since"] == window.since == scores[-1].as_of - timedelta(days=1) and body["days"] == 1
    assert body["symbols_scored"] == sum(s.symbols for s in kept)
    assert body["symbols_excluded"] == sum(len(s.excluded) for s in kept)


def test_no_scored_run_is_an_empty_summary_not_an_error() -> None:
    body = summary_view([], window=Window.ending(START, days=30))
    assert body["runs_scored"] == 0 and body["as_of"] is None and body["first_run"] is None
    assert body["ic_t_lags"] == 0 and body["run_spacing_seconds"] is None
    for side in ("model", "random_baseline"):
        figures = body[side]
        assert isinstance(figures, dict)
        assert figures["mean_ic"] is None and figures["ic_t"] is None and figures["positive_ic_share"] is None
        assert [item["count"] for item in figures["labels"]] == [0] * len(Label)
        assert figures["levels"] == {"judged": 0, "touched": 0, "bounced": 0, "touch_rate": None, "bounce_rate": None}


@pytest.mark.parametrize(
    ("candles", "spacing", "lags"), [(1, HOUR, 0), (24, HOUR, 23), (4, 4 * HOUR, 0), (4, 2 * HOUR, 1)]
)
def test_the_ic_t_lags_follow_the_overlap_of_horizon_and_run_spacing(
    candles: int, spacing: timedelta, lags: int
) -> None:
    scores = _history(10, candles=candles, spacing=spacing)
    assert ic_lags(scores) == lags
    # a repeated run time (a rerun of the same candle) does not shrink the spacing
    assert ic_lags([*scores, dataclasses.replace(scores[3], run_id="again")]) == lags


def test_a_run_row_and_a_symbol_call() -> None:
    score = _history(1)[0]
    row = run_row_view(score)
    assert row["run_id"] == score.run_id and row["ic"] == score.ic and row["random_ic"] == score.random_ic
    assert row["labels"] == [
        {"label": o.label.value, "count": o.count, "mean_percentile": o.mean_percentile} for o in score.labels
    ]
    assert row["levels"]["judged"] == score.levels_judged  # type: ignore[index]
    assert calls_view([], window=_window([score]))["calls"] == []


def test_undefined_means_are_skipped_not_counted_as_zero() -> None:
    outcome = LabelOutcome(Label.BUY, 4, None, None, None, None)
    scores = _history(3)
    scores = [dataclasses.replace(s, labels=(outcome,), top5_excess=None, ic=math.nan) for s in scores]
    model = summary_view(scores, window=_window(scores))["model"]
    assert isinstance(model, dict)
    buy = next(item for item in model["labels"] if item["label"] == "BUY")
    assert buy["count"] == 12 and buy["mean_return"] is None
    assert model["top5_excess"] is None and model["mean_ic"] is None and model["runs_with_ic"] == 0


def test_every_track_record_field_is_documented_with_an_example() -> None:
    text = (REPO_ROOT / "docs" / "api.md").read_text()
    section = text[text.index("## Track record (new)") : text.index("## GET /health")]
    models = (TrackRecordResponse, TrackRecordRunsResponse, SymbolTrackRecordResponse, ScoredRunItem, SymbolCall)
    nested = (TrackFigures, LabelOutcomeItem, LevelOutcomes, RunLabelCount, RunRef)
    names = {name for model in (*models, *nested) for name in model.model_fields}
    undocumented = [name for name in names if not re.search(rf"`[^`\n]*\b{name}\b[^`\n]*`", section)]
    without_example = [name for name in names if f'"{name}":' not in section]
    assert not undocumented and not without_example, (undocumented, without_example)
