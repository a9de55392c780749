"""An independent recomputation of one run's track record from the stored rows and candles alone.

Plain SQL, pandas and numpy, written from docs/analysis.md ("Track record"), not from ``app.analysis``: the entry
candle closes at the run's ``data_as_of``; a symbol is scored when the entry candle and the ``h + 3`` after it are
stored with no price discontinuity after the entry (open more than x3 from the previous close, or close more than
x10 from it); forward return ``ln(close[exit] / close[entry])``; Spearman IC (five pairs at least); percentile
``(average rank - 1) / (n - 1) * 100``; excess over the mean; beats = above the median; top-N by (score desc,
symbol); levels of symbols with an ATR (mean true range of the 14 candles ending at the entry, when those and the
one before are stored with no discontinuity) touched by a low (support) / high (resistance) within h candles,
bounced when the close three candles after the first touch is back on the level's side; the random baseline's
draws as documented.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, text

from app.domain import RunScore

LABELS = ("STRONG_BUY", "BUY", "HOLD", "SELL", "STRONG_SELL")
BOUNCE = 3
ATR_CANDLES = 14


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _query(engine: Engine, sql: str, **params: Any) -> pd.DataFrame:
    with engine.connect() as connection:
        return pd.read_sql(text(sql), connection, params=params)


def _run(engine: Engine, run_id: str, horizon: str) -> tuple[pd.Series, pd.DataFrame, dict[str, list[Any]]]:
    run = _query(engine, "SELECT exchange, timeframe, data_as_of FROM analysis_runs WHERE run_id = :r", r=run_id).iloc[
        0
    ]
    recs = _query(engine, "SELECT symbol, scores_by_horizon FROM recommendations WHERE run_id = :r", r=run_id)
    recs["served"] = [_json(v)[horizon] for v in recs["scores_by_horizon"]]
    recs["score"] = [s["score"] for s in recs["served"]]
    recs["label"] = [s["label"] for s in recs["served"]]
    levels = _query(engine, "SELECT symbol, levels FROM support_levels WHERE run_id = :r", r=run_id)
    by_symbol = {row.symbol: _json(row.levels) for row in levels.itertuples()}
    return run, recs.sort_values("symbol").reset_index(drop=True), by_symbol


def _grid(engine: Engine, run: pd.Series, symbols: list[str], *, entry_ms: int, step_ms: int, h: int) -> pd.DataFrame:
    """Rows: open times from ATR_CANDLES before the entry to the last of the window; columns: (field, symbol)."""
    first_ms, last_ms = entry_ms - ATR_CANDLES * step_ms, entry_ms + (h + BOUNCE) * step_ms
    candles = _query(
        engine,
        "SELECT symbol, open_time_ms, open, high, low, close FROM candles WHERE exchange = :e AND timeframe = :t "
        "AND open_time_ms BETWEEN :a AND :b",
        e=run["exchange"],
        t=run["timeframe"],
        a=first_ms,
        b=last_ms,
    )
    candles = candles[candles["symbol"].isin(symbols)]
    wide = candles.pivot(index="open_time_ms", columns="symbol", values=["open", "high", "low", "close"])
    index = pd.Index(range(first_ms, last_ms + 1, step_ms), name="open_time_ms")
    columns = pd.MultiIndex.from_product([["open", "high", "low", "close"], symbols])
    return wide.reindex(index=index, columns=columns)


def _breaks(grid: pd.DataFrame, symbol: str) -> pd.Series:
    """True where a discontinuity lies between a row's close and the previous row's close."""
    previous = grid["close"][symbol].shift(1)
    gap = np.log(grid["open"][symbol] / previous).abs() > math.log(3)
    move = np.log(grid["close"][symbol] / previous).abs() > math.log(10)
    return gap | move


def _atr(grid: pd.DataFrame, symbol: str) -> float:
    rows = grid.iloc[: ATR_CANDLES + 1]
    high, low, close = rows["high"][symbol], rows["low"][symbol], rows["close"][symbol]
    if close.isna().any() or _breaks(grid, symbol).iloc[1 : ATR_CANDLES + 1].any():
        return math.nan
    previous = close.shift(1)
    true_range = pd.concat([high - low, (high - previous).abs(), (low - previous).abs()], axis=1).max(axis=1)
    return float(true_range.iloc[1:].mean())


def _level(grid: pd.DataFrame, symbol: str, price: float, support: bool, h: int) -> tuple[bool, bool]:
    start = ATR_CANDLES + 1
    window = grid.iloc[start : start + h]
    crossed = (window["low"][symbol] <= price) if support else (window["high"][symbol] >= price)
    if not crossed.any():
        return False, False
    after = float(grid["close"][symbol].iloc[start + int(np.argmax(crossed.to_numpy())) + BOUNCE])
    return True, (after > price) if support else (after < price)


def _label_rows(labels: list[str], returns: pd.Series) -> list[dict[str, Any]]:
    known = returns.dropna()
    n = len(known)
    percentile = (known.rank() - 1) / (n - 1) * 100 if n > 1 else known * 0 + 50
    excess, beats = known - known.mean(), (known > known.median()).astype(float)
    out = []
    for label in LABELS:
        chosen = [s for s in known.index if labels[s] == label]
        mean = {
            k: float(v[chosen].mean()) if chosen else None
            for k, v in {"r": known, "x": excess, "p": percentile, "b": beats}.items()
        }
        out.append(
            {
                "label": label,
                "count": len(chosen),
                "mean_return": mean["r"],
                "mean_excess_log_return": mean["x"],
                "mean_percentile": mean["p"],
                "share_beating_median": mean["b"],
            }
        )
    return out


def _figures(
    scores: pd.Series, labels: list[str], returns: pd.Series, levels: list[tuple[bool, bool]]
) -> dict[str, Any]:
    known = returns.dropna()
    ic = scores[known.index].rank().corr(known.rank()) if len(known) >= 5 else None  # Spearman: Pearson of ranks
    excess = known - known.mean()
    order = sorted(known.index, key=lambda i: (-scores[i], i))
    top = {n: float(excess[order[:n]].mean()) if len(order) >= n else None for n in (5, 10)}
    return {
        "ic": None if ic is None or not math.isfinite(ic) else float(ic),
        "labels": _label_rows(labels, returns),
        "top5_excess": top[5],
        "top10_excess": top[10],
        "levels": (len(levels), sum(t for t, _ in levels), sum(b for _, b in levels)),
    }


def _returns(grid: pd.DataFrame, symbols: list[str], candles: int) -> tuple[pd.Series, set[str]]:
    """Forward log returns by symbol position (NaN when excluded) and the excluded symbols."""
    returns, excluded = pd.Series(np.nan, index=range(len(symbols))), set()
    for i, symbol in enumerate(symbols):
        closes = grid["close"][symbol].iloc[ATR_CANDLES:]
        if closes.isna().any() or _breaks(grid, symbol).iloc[ATR_CANDLES + 1 :].any():
            excluded.add(symbol)
        else:
            returns[i] = math.log(closes.iloc[candles] / closes.iloc[0])
    return returns, excluded


def recompute(engine: Engine, run_id: str, horizon: str, *, candles: int) -> dict[str, Any]:
    """Every figure of the run's score at ``horizon`` (``candles`` long), recomputed independently."""
    run, recs, served_levels = _run(engine, run_id, horizon)
    step_ms = {"1h": 3_600_000, "4h": 14_400_000, "1d": 86_400_000}[run["timeframe"]]
    entry_ms = int(pd.Timestamp(run["data_as_of"]).tz_localize(None).value // 1_000_000) - step_ms
    symbols = list(recs["symbol"])
    grid = _grid(engine, run, symbols, entry_ms=entry_ms, step_ms=step_ms, h=candles)
    returns, excluded = _returns(grid, symbols, candles)
    anchored = [i for i, s in enumerate(symbols) if s not in excluded and _atr(grid, s) > 0]
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(run_id.encode()).digest(), "big"))
    random_scores, permutation = pd.Series(rng.random(len(symbols))), rng.permutation(len(symbols))
    real, placebo = [], []
    for k, i in enumerate(anchored):
        own = symbols[i]
        for level in served_levels.get(own, []):
            support = level["kind"] == "support"
            real.append(_level(grid, own, level["price"], support, candles))
            if len(anchored) < 2:
                continue
            drawn = int(rng.integers(len(anchored) - 1))
            other = symbols[anchored[drawn + (drawn >= k)]]
            close_own, close_other = grid["close"][own].iloc[ATR_CANDLES], grid["close"][other].iloc[ATR_CANDLES]
            placed = close_other + (level["price"] - close_own) / _atr(grid, own) * _atr(grid, other)
            if placed > 0:
                placebo.append(_level(grid, other, placed, support, candles))
    labels = list(recs["label"])
    served = _figures(recs["score"], labels, returns, real)
    random = _figures(random_scores, [labels[j] for j in permutation], returns, placebo)
    return {
        "symbols": int(returns.notna().sum()),
        "excluded": sorted(excluded),
        "served": served,
        "random": random,
    }


def flat(value: Any, path: str = "") -> dict[str, Any]:
    """Nested dicts, lists and tuples as one {path: leaf} mapping (numbers as floats, to compare with a tolerance)."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in flat(item, f"{path}.{key}").items()}
    if isinstance(value, list | tuple):
        return {k: v for i, item in enumerate(value) for k, v in flat(item, f"{path}[{i}]").items()}
    is_number = isinstance(value, int | float | np.number) and not isinstance(value, bool)
    return {path: float(value) if is_number else value}


def differences(stored: Any, recomputed: Any, *, rel: float = 1e-9, abs_: float = 1e-12) -> list[str]:
    """Where two nested figure sets differ (numbers beyond the tolerance); empty when they agree."""
    left, right = flat(stored), flat(recomputed)
    out = [f"{k}: only on one side" for k in sorted(set(left) ^ set(right))]
    for key in sorted(set(left) & set(right)):
        a, b = left[key], right[key]
        same = (
            math.isclose(a, b, rel_tol=rel, abs_tol=abs_) if isinstance(a, float) and isinstance(b, float) else a == b
        )
        if not same:
            out.append(f"{key}: stored {a!r}, recomputed {b!r}")
    return out


def stored_figures(score: RunScore) -> dict[str, Any]:
    """A stored ``RunScore`` in the shape ``recompute`` returns."""

    def block(labels: Any, ic: Any, top5: Any, top10: Any, levels: tuple[int, int, int]) -> dict[str, Any]:
        rows = [dataclasses.asdict(o) | {"label": str(o.label)} for o in labels]
        return {"ic": ic, "labels": rows, "top5_excess": top5, "top10_excess": top10, "levels": levels}

    s = score
    return {
        "symbols": s.symbols,
        "excluded": sorted(s.excluded),
        "served": block(
            s.labels, s.ic, s.top5_excess, s.top10_excess, (s.levels_judged, s.levels_touched, s.levels_bounced)
        ),
        "random": block(
            s.random_labels,
            s.random_ic,
            s.random_top5_excess,
            s.random_top10_excess,
            (s.random_levels_judged, s.random_levels_touched, s.random_levels_bounced),
        ),
    }
