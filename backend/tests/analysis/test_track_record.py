"""The track record of one run on hand tables: IC, per-label outcomes, top-N, levels, exclusions, the random
baseline (its draws replayed here from the documented recipe), and the shared window rules of ``outcomes``."""

from __future__ import annotations

import hashlib
import math
import statistics
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import numpy as np
import pytest

from app.analysis.outcomes import entry_atr, label_stats, price_series, window_problem
from app.analysis.track_record import RunWindow, score_run
from app.domain import (
    Candle,
    Horizon,
    HorizonModel,
    HorizonScore,
    Label,
    Level,
    MarketStatus,
    Recommendation,
    Snapshot,
    SupportLevels,
    ms_to_datetime,
)

HOUR_MS = 3_600_000
HISTORY = 15  # candles before the entry candle (the ATR reads 14 true ranges)
ENTRY_OPEN_MS = 1_700_000_000_000 - 1_700_000_000_000 % HOUR_MS
AS_OF = ms_to_datetime(ENTRY_OPEN_MS + HOUR_MS)
SCORED_AT = datetime(2030, 1, 1, tzinfo=UTC)
H1 = Horizon("1h", 1)
# symbol -> (served score at 1h, label, forward log return over the next candle)
CALLS: dict[str, tuple[float, Label, float]] = {
    "A/USDT": (0.9, Label.BUY, 0.030),
    "B/USDT": (0.8, Label.BUY, -0.010),
    "C/USDT": (0.6, Label.HOLD, 0.020),
    "D/USDT": (0.5, Label.HOLD, 0.000),
    "E/USDT": (0.3, Label.SELL, -0.020),
    "F/USDT": (0.1, Label.SELL, -0.040),
}


def candles_of(closes: Sequence[float], *, spread: float = 0.01, first_open_ms: int) -> list[Candle]:
    """Hourly candles with these closes, each opening at the previous close, high/low ``spread`` around."""
    opens = [closes[0], *closes[:-1]]
    return [
        Candle(first_open_ms + i * HOUR_MS, o, max(o, c) * (1 + spread), min(o, c) * (1 - spread), c, 10.0)
        for i, (o, c) in enumerate(zip(opens, closes, strict=True))
    ]


def path(forward: float, *, after: Sequence[float] = (1.0, 1.0, 1.0)) -> list[float]:
    """Flat history at 100, the entry at 100, the exit at 100 * e^forward, then ``after`` x the exit close."""
    exit_close = 100.0 * math.exp(forward)
    return [100.0] * (HISTORY + 1) + [exit_close] + [exit_close * f for f in after]


def snapshot(levels: Mapping[str, Sequence[Level]] | None = None, *, run_id: str = "run-hand") -> Snapshot:
    recs = tuple(
        Recommendation(
            symbol=symbol,
            rank=rank,
            total_score=score,
            technical_score=score,
            volume_score=score,
            volatility_score=score,
            risk_score=score,
            label=label,
            current_price=100.0,
            price_change_24h=0.0,
            volume_24h=1.0,
            horizon="1h",
            scores_by_horizon={"1h": HorizonScore(score, rank, label, 0.5)},
        )
        for rank, (symbol, (score, label, _)) in enumerate(CALLS.items(), start=1)
    )
    market = MarketStatus("neutral", "neutral", 0.5, len(recs), 1.0, 0.0, (), ())
    return Snapshot(
        run_id=run_id,
        exchange="binance",
        timeframe="1h",
        data_as_of=AS_OF,
        generated_at=AS_OF,
        universe_size=len(recs),
        recommendations=recs,
        levels={
            s: SupportLevels(s, None, None, None, None, None, None, "hand", 10, tuple(v))
            for s, v in (levels or {}).items()
        },
        market=market,
        models={"1h": HorizonModel(horizon="1h", candles=1, weights={"reversal_1": 1.0}, weights_source="prior")},
        default_horizon="1h",
    )


def window(candles: Mapping[str, list[Candle]], levels: Mapping[str, Sequence[Level]] | None = None) -> RunWindow:
    return RunWindow(snapshot=snapshot(levels), horizon=H1, step_ms=HOUR_MS, candles=candles)


def hand_candles(**paths: list[float]) -> dict[str, list[Candle]]:
    first_open_ms = ENTRY_OPEN_MS - HISTORY * HOUR_MS
    closes = {symbol: path(forward) for symbol, (_, _, forward) in CALLS.items()}
    closes.update({f"{base}/USDT": values for base, values in paths.items()})
    return {symbol: candles_of(values, first_open_ms=first_open_ms) for symbol, values in closes.items()}


def level(price: float, kind: str) -> Level:
    return Level(price, kind, 0.5, ("hand",), 1, None, price - 100.0)


def test_ic_labels_and_top_n_are_those_of_the_hand_computation() -> None:
    score, outcomes = score_run(window(hand_candles()), scored_at=SCORED_AT)
    returns = {symbol: forward for symbol, (_, _, forward) in CALLS.items()}
    mean = statistics.fmean(returns.values())
    ordered = sorted(returns.values())
    median = statistics.median(ordered)
    # Scores rank A > B > C > D > E > F; returns rank A > C > D > B > E > F: d = (0, 2, 1, 1, 0, 0), n = 6.
    assert score.ic == pytest.approx(1 - 6 * (0 + 4 + 1 + 1 + 0 + 0) / (6 * 35))
    assert score.symbols == 6 and score.excluded == {}
    by_label = {o.label: o for o in score.labels}
    assert [o.label for o in score.labels] == list(Label)
    buy = ["A/USDT", "B/USDT"]
    assert by_label[Label.BUY].count == 2
    assert by_label[Label.BUY].mean_return == pytest.approx(statistics.fmean(returns[s] for s in buy))
    assert by_label[Label.BUY].mean_excess_log_return == pytest.approx(statistics.fmean(returns[s] - mean for s in buy))
    percentile = {s: ordered.index(r) / 5 * 100 for s, r in returns.items()}
    assert by_label[Label.BUY].mean_percentile == pytest.approx((percentile["A/USDT"] + percentile["B/USDT"]) / 2)
    assert by_label[Label.BUY].share_beating_median == 0.5 and median == pytest.approx(-0.005)
    assert by_label[Label.SELL].share_beating_median == 0.0
    assert by_label[Label.STRONG_BUY].count == 0 and by_label[Label.STRONG_BUY].mean_return is None
    top5 = ["A/USDT", "B/USDT", "C/USDT", "D/USDT", "E/USDT"]
    assert score.top5_excess == pytest.approx(statistics.fmean(returns[s] - mean for s in top5))
    assert score.top10_excess is None  # fewer than ten symbols
    assert score.window_end == ms_to_datetime(ENTRY_OPEN_MS + 2 * HOUR_MS) and score.scored_at == SCORED_AT
    row = next(o for o in outcomes if o.symbol == "C/USDT")
    assert row.forward_return == pytest.approx(0.02) and row.excess_log_return == pytest.approx(0.02 - mean)
    assert (row.label, row.rank, row.score, row.percentile) == (Label.HOLD, 3, 0.6, pytest.approx(percentile["C/USDT"]))


def test_gaps_and_discontinuities_exclude_the_symbol_with_the_reason() -> None:
    candles = hand_candles(C=path(0.02, after=(1.0, 1000.0, 1000.0)))  # a x1000 jump two candles after the exit
    del candles["D/USDT"][HISTORY + 2]  # the candle after D's exit is missing
    candles["E/USDT"] = candles["E/USDT"][: HISTORY + 1]  # E stops at its entry candle
    score, outcomes = score_run(window(candles), scored_at=SCORED_AT)
    assert score.symbols == 3
    assert score.excluded["C/USDT"].startswith("price discontinuity at ")
    assert score.excluded["D/USDT"].startswith("candle gap: 1 of the 4 candles")
    assert score.excluded["E/USDT"].startswith("candle gap: 4 of the 4 candles")
    excluded = [o for o in outcomes if o.symbol in score.excluded]
    assert len(excluded) == 3 and all(o.forward_return is None and o.percentile is None for o in excluded)
    kept = {"A/USDT": 0.03, "B/USDT": -0.01, "F/USDT": -0.04}
    assert score.ic is None  # three pairs are below the IC's minimum of five
    mean = statistics.fmean(kept.values())
    assert next(o for o in outcomes if o.symbol == "F/USDT").excess_log_return == pytest.approx(-0.04 - mean)


def test_levels_are_judged_as_evaluate_judges_them() -> None:
    # A's exit candle (the 1h window) opens at 100 and closes at 100 e^0.03 ~ 103.05: low 99.0, high ~104.08;
    # three candles after it the close is still 103.05.
    levels = {"A/USDT": [level(98.5, "support"), level(103.0, "resistance"), level(99.5, "support")]}
    score, _ = score_run(window(hand_candles(), levels), scored_at=SCORED_AT)
    # 98.5: not reached. 103 resistance: touched, and 103.05 is not back under it. 99.5 support: touched, bounced.
    assert (score.levels_judged, score.levels_touched, score.levels_bounced) == (3, 2, 1)


def _draws(run_id: str, symbols: int, levels: int, anchored: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The baseline's draws replayed from the documented recipe (seed: SHA-256 of the run id, big-endian)."""
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(run_id.encode()).digest(), "big"))
    scores, permutation = rng.random(symbols), rng.permutation(symbols)
    return scores, permutation, [int(rng.integers(anchored - 1)) for _ in range(levels)]


def test_the_random_baseline_follows_the_documented_draws() -> None:
    levels = {"B/USDT": [level(99.0, "support"), level(250.0, "resistance")]}
    score, _ = score_run(window(hand_candles(), levels), scored_at=SCORED_AT)
    again, _ = score_run(window(hand_candles(), levels), scored_at=SCORED_AT)
    assert again == score
    scores, permutation, picks = _draws("run-hand", 6, 2, 6)
    symbols = list(CALLS)
    returns = np.array([CALLS[s][2] for s in symbols])
    ranks_r, ranks_s = np.argsort(np.argsort(returns)), np.argsort(np.argsort(scores))
    assert score.random_ic == pytest.approx(float(np.corrcoef(ranks_s, ranks_r)[0, 1]))
    labels = [CALLS[symbols[i]][1] for i in permutation]
    for outcome in score.random_labels:
        chosen = [k for k, label in enumerate(labels) if label == outcome.label]
        assert outcome.count == len(chosen)
        if chosen:
            assert outcome.mean_return == pytest.approx(float(returns[chosen].mean()))
    best = np.argsort(-scores, kind="stable")[:5]
    assert score.random_top5_excess == pytest.approx(float((returns[best] - returns.mean()).mean()))
    # Every entry closes at 100 with an ATR of 2: a placed level keeps its price, on another symbol than B.
    targets = [symbols[k + (k >= 1)] for k in picks]
    assert "B/USDT" not in targets and score.levels_judged == score.random_levels_judged == 2
    assert score.random_levels_touched == 1  # every exit candle's low is at most 99.0; none reaches 250


def test_window_rules_and_atr_on_a_hand_series() -> None:
    candles = candles_of([100.0] * 15 + [110.0, 120.0], spread=0.0, first_open_ms=0)
    series = price_series(candles, step_ms=HOUR_MS)
    assert window_problem(series, 14 * HOUR_MS, candles=2) is None
    assert (
        window_problem(series, 15 * HOUR_MS, candles=2)
        == "candle gap: 1 of the 2 candles after 1970-01-01T15:00Z missing"
    )
    assert window_problem(series, 20 * HOUR_MS, candles=1) == "candle gap: no entry candle (opened 1970-01-01T20:00Z)"
    assert entry_atr(series, 14) == 0.0  # flat and spread-free: no range
    assert entry_atr(series, 15) == pytest.approx(10 / 14)  # one true range of 10 among fourteen
    assert math.isnan(entry_atr(series, 13))  # fewer than fourteen true ranges before it
    stats = label_stats(
        [Label.BUY, Label.BUY, Label.SELL],
        returns=np.array([0.1, np.nan, -0.1]),
        excess=np.array([0.1, np.nan, -0.1]),
        percentile=np.array([100.0, np.nan, 0.0]),
        beats=np.array([1.0, np.nan, 0.0]),
    )
    assert stats[Label.BUY].count == 1 and stats[Label.BUY].mean_percentile == 100.0
    assert stats[Label.HOLD].count == 0 and math.isnan(stats[Label.HOLD].mean_return)
