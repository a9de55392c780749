"""The evaluation report: stable JSON keys summarising every period's scores, the levels and the models served.

Invariants (every key is documented in docs/analysis.md §5):
- IC statistics are over the periods where the IC is defined: mean, Newey-West t with ``nw_lags`` =
  ceil(h / step) - 1 Bartlett lags (the overlap of h-candle returns sampled every ``step`` candles; h - 1 when every
  candle is sampled, 0 when periods do not overlap), share of periods with IC > 0.
- ``best_baseline`` is the baseline or single factor with the highest mean IC (chosen on the same periods, which
  favours the baseline); paired differences are per period, over periods where both ICs are defined.
- Label statistics pool every labelled symbol with a known forward return over all periods.
- Numbers are rounded (IC 5 decimals, t 3, shares 4, log returns 6, percentiles 2); None where undefined.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from app.analysis.hazards import GAP_FACTOR, MOVE_FACTOR
from app.analysis.options import AnalysisOptions
from app.analysis.outcomes import BOUNCE_CANDLES, TOP_COUNTS, label_stats
from app.analysis.statistics import newey_west_t
from app.domain import Horizon, HorizonModel, ms_to_datetime
from app.evaluate.level_events import GROUPS, LevelTally
from app.evaluate.replay import MarketData
from app.evaluate.scoring import BASELINES, ENTRY_DELAY_CANDLES, HorizonOutcome, PeriodScore

Json = dict[str, Any]


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def nw_lags(horizon_candles: int, step: int) -> int:
    """Newey-West lags for h-candle returns sampled every ``step`` candles."""
    return max(0, math.ceil(horizon_candles / step) - 1)


def ic_stats(values: Sequence[float], *, lags: int) -> Json:
    """mean_ic, nw_t, share_positive and periods of a series of per-period ICs (NaN periods left out)."""
    ic = np.asarray(values, dtype=np.float64)
    ic = ic[np.isfinite(ic)]
    if ic.size == 0:
        return {"mean_ic": None, "nw_t": None, "share_positive": None, "periods": 0}
    return {
        "mean_ic": _round(float(ic.mean()), 5),
        "nw_t": _round(newey_west_t(ic, lags=lags), 3),
        "share_positive": _round(float(np.mean(ic > 0)), 4),
        "periods": int(ic.size),
    }


def paired_difference(first: Sequence[float], second: Sequence[float], *, against: str | None, lags: int) -> Json:
    """Mean per-period IC difference ``first - second`` with its Newey-West t."""
    diff = np.asarray(first, dtype=np.float64) - np.asarray(second, dtype=np.float64)
    diff = diff[np.isfinite(diff)]
    return {
        "against": against,
        "mean_ic_difference": _round(float(diff.mean()), 5) if diff.size else None,
        "nw_t": _round(newey_west_t(diff, lags=lags), 3),
        "periods": int(diff.size),
    }


def _label_stats(outcomes: Sequence[HorizonOutcome]) -> Json:
    columns = {
        key: np.concatenate([getattr(o, key) for o in outcomes]) if outcomes else np.zeros(0)
        for key in ("returns", "percentile", "excess", "beats")
    }
    stats = label_stats([label for o in outcomes for label in o.labels], **columns)
    return {
        str(label): {
            "count": s.count,
            "mean_percentile": _round(s.mean_percentile, 2),
            "mean_excess_log_return": _round(s.mean_excess, 6),
            "share_beating_median": _round(s.share_beating, 4),
        }
        for label, s in stats.items()
    }


def _top_stats(outcomes: Sequence[HorizonOutcome], count: int, *, lags: int) -> Json:
    values = np.array([o.top_excess[count] for o in outcomes], dtype=np.float64)
    values = values[np.isfinite(values)]
    return {
        "mean_excess_log_return": _round(float(values.mean()), 6) if values.size else None,
        "nw_t": _round(newey_west_t(values, lags=lags), 3),
        "periods": int(values.size),
    }


def horizon_block(scores: Sequence[PeriodScore], horizon: Horizon, *, delay: int, step: int) -> Json:
    """Every figure of one horizon at one entry delay."""
    outcomes = [s.outcomes[(horizon.name, delay)] for s in scores]
    lags = nw_lags(horizon.candles, step)
    series = {name: [o.ics[name] for o in outcomes] for name in (outcomes[0].ics if outcomes else ["score"])}
    stats = {name: ic_stats(values, lags=lags) for name, values in series.items()}
    rivals = {name: s for name, s in stats.items() if name != "score" and s["mean_ic"] is not None}
    best = max(rivals, key=lambda name: rivals[name]["mean_ic"]) if rivals else None
    none = [math.nan] * len(outcomes)
    return {
        "candles": horizon.candles,
        "nw_lags": lags,
        "score": stats["score"],
        "baselines": {name: stats.get(name, ic_stats([], lags=lags)) for name in BASELINES},
        "factors": {name.removeprefix("factor:"): s for name, s in stats.items() if name.startswith("factor:")},
        "best_baseline": best and best.removeprefix("factor:"),
        "score_minus_best_baseline": paired_difference(
            series["score"], series[best] if best else none, against=best and best.removeprefix("factor:"), lags=lags
        ),
        "score_minus_reversal_24h": paired_difference(
            series["score"], series.get("reversal_24h", none), against="reversal_24h", lags=lags
        ),
        "labels": _label_stats(outcomes),
        **{f"top_{n}": _top_stats(outcomes, n, lags=lags) for n in TOP_COUNTS},
    }


def _rate(numerator: int, denominator: int) -> float | None:
    return _round(numerator / denominator, 4) if denominator else None


def levels_block(tally: LevelTally) -> Json:
    """Touch and bounce rates of the served levels and of their placebos, per group."""
    out: Json = {}
    for group in GROUPS:
        pairs = [(e.outcome, p) for e, p in zip(tally.events, tally.placebos, strict=True) if e.group == group]
        real = [o for o, _ in pairs]
        placebo = [p for _, p in pairs if p is not None]
        bounce = _rate(sum(o.bounced for o in real), sum(o.touched for o in real))
        placebo_bounce = _rate(sum(p.bounced for p in placebo), sum(p.touched for p in placebo))
        out[group] = {
            "levels": len(real),
            "touch_rate": _rate(sum(o.touched for o in real), len(real)),
            "bounce_rate": bounce,
            "placebo_levels": len(placebo),
            "placebo_touch_rate": _rate(sum(p.touched for p in placebo), len(placebo)),
            "placebo_bounce_rate": placebo_bounce,
            "bounce_ratio": _round(bounce / placebo_bounce, 3) if bounce is not None and placebo_bounce else None,
        }
    return out


def models_block(models: Sequence[Mapping[str, HorizonModel]], options: AnalysisOptions) -> Json:
    """Per horizon: how many fits were served, the share of periods with fitted weights and with active labels."""
    out: Json = {}
    for horizon in options.horizons:
        served = [m[horizon.name] for m in models if horizon.name in m]
        fits = {m.fitted_at: m for m in served if m.fitted_at is not None}
        ics = [m.walk_forward_ic for m in fits.values() if m.walk_forward_ic is not None]
        out[horizon.name] = {
            "fits": len(fits),
            "share_fitted": _rate(sum(m.weights_source != "prior" for m in served), len(served)),
            "share_labels_active": _rate(sum(m.labels_active for m in served), len(served)),
            "mean_walk_forward_ic": _round(float(np.mean(ics)), 5) if ics else None,
            "last_note": served[-1].note if served else None,
        }
    return out


def _iso(value_ms: int | None) -> str | None:
    return None if value_ms is None else ms_to_datetime(value_ms).isoformat()


def config_block(market: MarketData, options: AnalysisOptions, *, step: int, config: Mapping[str, Any]) -> Json:
    """What was evaluated: the served configuration and the evaluation's own choices."""
    if market.levels_timeframe == market.analysis_timeframe:
        levels_source = "analysis candles"
    else:
        levels_source = f"resampled from {market.analysis_timeframe}" if market.levels_resampled else "files"
    return {
        "analysis_timeframe": options.analysis_timeframe,
        "levels_timeframe": options.levels_timeframe,
        "levels_source": levels_source,
        "lookback_candles": options.lookback_candles,
        "horizons": {h.name: h.candles for h in options.horizons},
        "default_horizon": options.default_horizon,
        "fit_window_candles": options.fit.window_candles,
        "fit_min_cross_sections": options.fit.min_cross_sections,
        "refit_interval_s": options.refit_interval_s,
        "pinned_horizons": sorted(options.pinned_weights),
        "symbols": len(market.symbols),
        "step_candles": step,
        "seed": config["seed"],
        "start": _iso(config["start_ms"]),
        "end": _iso(config["end_ms"]),
        "entry_delay_candles": ENTRY_DELAY_CANDLES,
        "level_window_candles": max(h.candles for h in options.horizons),
        "bounce_candles": BOUNCE_CANDLES,
        "discontinuity_rule": {"gap_factor": GAP_FACTOR, "move_factor": MOVE_FACTOR},
    }


def build_report(
    scores: Sequence[PeriodScore],
    levels: LevelTally,
    models: Sequence[Mapping[str, HorizonModel]],
    *,
    market: MarketData,
    options: AnalysisOptions,
    step: int,
    config: Mapping[str, Any],
) -> Json:
    """The whole report (see the module docstring and docs/analysis.md §5)."""
    return {
        "config": config_block(market, options, step=step, config=config),
        "periods": len(scores),
        "first_period": _iso(scores[0].now_ms) if scores else None,
        "last_period": _iso(scores[-1].now_ms) if scores else None,
        "models": models_block(models, options),
        "horizons": {h.name: horizon_block(scores, h, delay=0, step=step) for h in options.horizons},
        "sensitivity": {
            "entry_delay_candles": ENTRY_DELAY_CANDLES,
            "horizons": {
                h.name: horizon_block(scores, h, delay=ENTRY_DELAY_CANDLES, step=step) for h in options.horizons
            },
        },
        "levels": levels_block(levels),
    }
